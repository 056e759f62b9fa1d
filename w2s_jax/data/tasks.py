"""Task registry: a task is (loader, formatter, label set), all plain functions.

  load(task_cfg)          -> {"train": rows, "test": rows}; a row is any dict, `where` tells
                             where it came from (file:line or split:row) for error messages
  format(row, task_cfg, labels) -> (text, label index)
  labels(task_cfg)        -> tuple of label names (their count is the number of classes)
"""
import importlib
import json
import os
import zlib
from typing import Callable, NamedTuple

import numpy as np

from w2s_jax.errors import ConfigError, DataError  # noqa: F401  (DataError: re-exported)


class MissingDataFile(DataError, FileNotFoundError):
  """A data file that does not exist: a DataError (one line from main), and still the
  FileNotFoundError that callers caught before."""


class Task(NamedTuple):
  load: Callable
  format: Callable
  labels: Callable
  kind: str = "classification"  # or "pairwise": (text_a, text_b) rows for reward models
  balance: bool = False  # always downsample to equal classes (the paper's tasks)
  # The zero-shot baseline's prompt (w2s_jax/zero_shot.py): (text appended to every row, one
  # answer word per class); None: no prompt, so no zero-shot score.
  zero_shot: tuple | None = None
  assets: tuple = ()  # external assets the loader reads (w2s_jax/assets.py), fetched up front


def _label_index(value, labels, where):
  if isinstance(value, bool) or not isinstance(value, (int, str)):
    raise DataError(f"{where}: label must be an int or one of {list(labels)}, got {value!r}")
  if isinstance(value, str):
    if value not in labels:
      raise DataError(f"{where}: unknown label {value!r}; the task's labels are {list(labels)}")
    return labels.index(value)
  if not 0 <= value < len(labels):
    raise DataError(f"{where}: label {value} out of range for {len(labels)} classes")
  return value


def _text_label(row, cfg, labels):
  """Formatter for tasks whose rows already hold a text and a label field."""
  where = row.get("_where", "?")
  if cfg.text_field not in row or cfg.label_field not in row:
    raise DataError(f"{where}: row needs fields {cfg.text_field!r} and {cfg.label_field!r}, "
                    f"has {sorted(k for k in row if k != '_where')}")
  text = row[cfg.text_field]
  if not isinstance(text, str):
    raise DataError(f"{where}: field {cfg.text_field!r} must be a string, got {type(text).__name__}")
  return text, _label_index(row[cfg.label_field], labels, where)


# ----------------------------------------------------------------------------------- JSONL
def read_jsonl(path: str) -> list[dict]:
  if not os.path.isfile(path):
    raise MissingDataFile(f"{path}: data file not found")
  rows = []
  with open(path, "rb") as f:  # decoded line by line: an encoding fault names its line
    for lineno, raw in enumerate(f, 1):
      where = f"{path}:{lineno}"
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                        f"{e.start + 1}); a binary or differently encoded file?") from None
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg})") from None
      if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
      row["_where"] = where
      rows.append(row)
  if not rows:
    raise DataError(f"{path}: no rows (an empty JSONL file)")
  return rows


def load_jsonl(cfg):
  if not cfg.train_file:
    raise ConfigError("config key 'task.train_file': required for task 'jsonl'")
  out = {"train": read_jsonl(cfg.train_file)}
  if cfg.test_file:
    out["test"] = read_jsonl(cfg.test_file)
  return out


# ---------------------------------------------------------------------- Hugging Face datasets
def load_hf(cfg):
  """`datasets.load_dataset`: a Hub id on a pod, or a local builder ("json", "parquet", "csv")
  with `train_file` / `test_file` as data files, offline."""
  import datasets  # noqa: PLC0415

  def split(name, data_file):
    kwargs = {"data_files": {name: data_file}} if data_file else {}
    try:
      ds = datasets.load_dataset(cfg.hf_path, cfg.hf_name or None, split=name,
                                 revision=cfg.hf_revision or None, **kwargs)
    except FileNotFoundError as e:
      raise MissingDataFile(f"{data_file or cfg.hf_path}: not found ({e})") from None
    return [dict(row, _where=f"{cfg.hf_path}[{name}] row {i}") for i, row in enumerate(ds)]

  out = {"train": split(cfg.train_split, cfg.train_file)}
  if cfg.test_split:
    out["test"] = split(cfg.test_split, cfg.test_file)
  return out


def load_tfds(cfg):
  """A prepared TFDS dataset (catalogue name on a pod, or a local data_dir), read through
  ArrayRecord without TensorFlow (w2s_jax/data/tfds_source.py)."""
  from w2s_jax.data import tfds_source  # noqa: PLC0415  (optional, heavy)
  if not cfg.tfds_name:
    raise ConfigError("config key 'task.tfds_name': required for task 'tfds'")
  out = {"train": tfds_source.load_rows(cfg.tfds_name, cfg.train_split, cfg.tfds_data_dir)}
  if cfg.test_split:
    out["test"] = tfds_source.load_rows(cfg.tfds_name, cfg.test_split, cfg.tfds_data_dir)
  return out


# ------------------------------------------------------------------------------ synthetic
POSITIVE, NEGATIVE, FILLER, NEGATION = "ab", "yz", "fghijkmnpqrstu", "!"


def synthetic_example(rng: np.random.Generator, label: int, negation_rate: float,
                      max_items: int) -> str:
  """Letters that vote (a, b: +1; y, z: -1), '!' flipping the next vote, fillers voting nothing,
  and a fixed '=' at the end where the classifier reads. The label is the sign of the sum.

  Counting votes is within reach of a one-layer model; negation needs the previous token, which
  a deeper model learns faster: a graded task where weak < strong in seconds on a CPU.
  """
  while True:
    items, score = [], 0
    for _ in range(int(rng.integers(3, max_items + 1))):
      if rng.random() < 0.25:
        items.append(str(rng.choice(list(FILLER))))
        continue
      positive = rng.random() < 0.5
      negated = rng.random() < negation_rate
      items.append((NEGATION if negated else "") + str(rng.choice(list(POSITIVE if positive
                                                                       else NEGATIVE))))
      score += 1 if positive != negated else -1
    if score != 0 and (score > 0) == bool(label):
      return "".join(items) + "="


def load_synthetic(cfg):
  rng = np.random.default_rng(cfg.synthetic_seed)

  def rows(n):
    labels = rng.permutation(np.arange(n) % 2)
    return [{"text": synthetic_example(rng, int(y), cfg.negation_rate, cfg.synthetic_items),
             "label": int(y), "_where": f"synthetic row {i}"} for i, y in enumerate(labels)]

  return {"train": rows(cfg.n_train or 4000), "test": rows(cfg.n_test or 1000)}


def load_synthetic_pairs(cfg):
  """Preference pairs of synthetic texts: (a positive text, a negative one); the positive
  text is preferred."""
  rng = np.random.default_rng(cfg.synthetic_seed)

  def rows(n, split):
    return [{"chosen": synthetic_example(rng, 1, cfg.negation_rate, cfg.synthetic_items),
             "rejected": synthetic_example(rng, 0, cfg.negation_rate, cfg.synthetic_items),
             "_where": f"synthetic-pairs {split} row {i}"} for i in range(n)]

  return {"train": rows(cfg.n_train or 4000, "train"), "test": rows(cfg.n_test or 1000, "test")}


def row_rng(row, cfg):
  """A row's own random stream under task.format_seed (formatting choices per row)."""
  return np.random.default_rng([cfg.format_seed, zlib.crc32(row.get("_where", "").encode())])


def preference_pair(row, cfg, chosen: str, rejected: str):
  """PAIRWISE: (chosen, rejected) in a random order (a function of the row and
  task.format_seed: position carries no label); label 1 when the first is preferred."""
  first_chosen = int(row_rng(row, cfg).random() < 0.5)
  return ((chosen, rejected) if first_chosen else (rejected, chosen)), first_chosen


def _chosen_rejected(row, cfg, labels):
  for k in ("chosen", "rejected"):
    if not isinstance(row.get(k), str):
      raise DataError(f"{row.get('_where', '?')}: field {k!r} must be a string")
  return preference_pair(row, cfg, row["chosen"], row["rejected"])


TASKS = {
    "synthetic": Task(load_synthetic, _text_label, lambda cfg: ("negative", "positive")),
    "synthetic-pairs": Task(load_synthetic_pairs, _chosen_rejected,
                            lambda cfg: ("second", "first"), "pairwise"),
    # Your preference pairs: {"chosen": ..., "rejected": ...} per line.
    "jsonl-pairs": Task(load_jsonl, _chosen_rejected, lambda cfg: ("second", "first"),
                        "pairwise"),
    "jsonl": Task(load_jsonl, _text_label, lambda cfg: tuple(cfg.labels)),
    "hf": Task(load_hf, _text_label, lambda cfg: tuple(cfg.labels)),
    "tfds": Task(load_tfds, _text_label, lambda cfg: tuple(cfg.labels)),
}

# Modules that register more tasks when imported (they import this module, never the reverse at
# import time, so any module of the package can be imported first).
PLUGINS = ("w2s_jax.data.nlp_tasks", "w2s_jax.data.offline_tasks", "w2s_jax.data.bigbench")


def register(new: dict) -> None:
  clash = set(new) & set(TASKS)
  if clash - {k for k in clash if TASKS[k] is new[k]}:
    raise ValueError(f"task names registered twice: {sorted(clash)}")
  TASKS.update(new)


def all_tasks() -> dict:
  """Every registered task (the plugin modules imported on first use)."""
  for module in PLUGINS:
    importlib.import_module(module)
  return TASKS


def get(name: str) -> Task:
  if name not in all_tasks():
    raise KeyError(f"config.task.name: unknown task {name!r}; known: {sorted(TASKS)}")
  return TASKS[name]
