"""TensorFlow Datasets rows without TensorFlow.

Reads prepared TFDS datasets through ``tfds.builder(...).as_data_source`` (random-access
ArrayRecord files), which in tensorflow-datasets 4.9.x needs only ``tensorflow-datasets`` and
``array-record``, not TensorFlow (``tfds.load`` / ``tf.data`` do need it). Random access also
means a split is indexed directly, no streaming pipeline. We use builder + as_data_source rather
than ``tfds.data_source``: the latter would try to download and prepare a missing dataset
(network, and TF for many catalogue builders); here a missing dataset is a clear error.

On a pod, prepare the dataset once in array_record format (where TF and network are available
if its builder needs them), e.g. ``tfds build imdb_reviews --data_dir=DIR
--file_format=array_record``; then ``load_rows("imdb_reviews", "train", DIR)``. A prepared
dataset is read from its files, so reading needs neither TF nor the builder code.
``prepare_local`` writes a TFDS dataset from in-memory rows (e.g. JSONL you already read) with no
TF and no network; the tests use it.

tensorflow_datasets is imported lazily: it is heavy and optional.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np



def _how(name: str) -> str:
  return ('prepare it with builder.download_and_prepare(file_format="array_record") '
      f"(or `tfds build {name} --data_dir=DIR --file_format=array_record`)")


def _plain(value):
  """numpy / bytes values from a TFDS data source -> plain Python (str, int, float, lists)."""
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    return [_plain(v) for v in value.tolist()] if value.dtype == object else value.tolist()
  if isinstance(value, np.generic):
    return _plain(value.item())
  if isinstance(value, Mapping):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_plain(v) for v in value]
  return value


def load_rows(name: str, split: str, data_dir: str = "", limit: int = 0) -> list[dict]:
  """Rows of a prepared TFDS dataset split as plain Python dicts (bytes decoded to str, numpy
  scalars to Python ints/floats), each with "_where" = f"tfds:{name}/{split} row {i}" for error
  messages. Raises FileNotFoundError with a clear message when the dataset is not prepared."""
  import tensorflow_datasets as tfds

  where = repr(data_dir) if data_dir else "the default TFDS data_dir ($TFDS_DATA_DIR or ~/tensorflow_datasets)"
  missing = f"TFDS dataset {name!r} is not prepared in {where}; {_how(name)}"
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.DatasetNotFoundError as e:
    raise FileNotFoundError(f"{missing}. (tfds: {str(e).splitlines()[0]})") from e
  if not builder.is_prepared():
    raise FileNotFoundError(f"{missing}. (looked in {builder.data_dir})")
  try:
    source = builder.as_data_source(split=split)
  except NotImplementedError as e:  # prepared, but only as tfrecord: not random access
    raise FileNotFoundError(f"TFDS dataset {name!r} in {builder.data_dir} is not in array_record "
                f"format; {_how(name)} into another data_dir") from e
  n = len(source) if limit <= 0 else min(limit, len(source))
  rows = []
  for i in range(n):
    row = _plain(source[i])
    row["_where"] = f"tfds:{name}/{split} row {i}"
    rows.append(row)
  return rows


def _feature(kind: str):
  import tensorflow_datasets as tfds
  kinds = {"text": tfds.features.Text, "int": lambda: tfds.features.Scalar(dtype=np.int64),
       "float": lambda: tfds.features.Scalar(dtype=np.float32)}
  if kind not in kinds:
    raise ValueError(f"feature kind {kind!r} not in {sorted(kinds)}")
  return kinds[kind]()


def prepare_local(splits: Mapping[str, Sequence[dict]], name: str, data_dir: str,
          features: Mapping[str, str] | None = None, version: str = "1.0.0") -> str:
  """Write rows ({split: [row dict, ...]}) as an array_record TFDS dataset `name` under data_dir,
  without TensorFlow or network; row order is kept. `features` maps field -> "text" | "int" |
  "float" (float32: TFDS stores floats in tf.train.Example float lists, so 0.1 reads back as
  0.10000000149...; default: inferred from the first row, "_"-prefixed keys skipped). Returns the
  prepared dataset directory; an existing one (same name and version) is reused, not rewritten.
  Read it back with load_rows(name, split, data_dir)."""
  import tensorflow_datasets as tfds

  if features is None:
    first = next(r for rows in splits.values() for r in rows)
    features = {k: "text" if isinstance(v, str) else "float" if isinstance(v, float) else "int"
          for k, v in first.items() if not k.startswith("_")}
  spec = tfds.features.FeaturesDict({k: _feature(kind) for k, kind in features.items()})

  class _LocalRows(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version(version)
    # tfds 4.9.10 resolves code_path via `importlib_resources` (a py<3.9-only dependency)
    # for builders defined in a package; there is no code (checksums) to find here anyway.
    code_path = None

    def __init__(self, **kwargs):
      self.name = name
      super().__init__(**kwargs)

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=spec, disable_shuffling=True)

    def _split_generators(self, dl_manager):
      return {s: self._generate_examples(rows) for s, rows in splits.items()}

    def _generate_examples(self, rows):
      for i, row in enumerate(rows):
        yield i, {k: row[k] for k in features}

  builder = _LocalRows(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare()
  return str(builder.data_dir)
