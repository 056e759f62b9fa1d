"""From task rows to tokenized splits and fixed-shape batches.

Splits: the task's train rows (deduplicated, and without any text of the test split) are shuffled
by `data_seed` into a pool and cut in half: A (ground truth for the weak model and the ceiling) and
B (relabelled by the weak model for the student). A replicate seed may cut the pool its own way
(`seed_halves`). Every model is scored on the same test split. Over-long examples are dropped
(never truncated) and counted.

Batches are padded to the smallest bucket length that holds their longest row, so a run compiles
one program per bucket, not one per batch. The training order is a pure function of (seed, step).
"""
import dataclasses
import functools
import hashlib
import logging
from typing import NamedTuple

import numpy as np

from w2s_jax.data import tasks

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:  # not a NamedTuple: len() is the number of rows
  # [N, max_len] int32, right-padded with 0; or [N, max_len, K]: K ids per position (chess), or
  # K = 2 texts per row (pairwise: lengths [N, 2]).
  tokens: np.ndarray
  lengths: np.ndarray  # [N] int32, >= 1 (pairs: [N, 2])
  labels: np.ndarray  # [N] int32 ground truth

  def __len__(self):
    return len(self.lengths)

  def take(self, idx):
    return Dataset(self.tokens[idx], self.lengths[idx], self.labels[idx])

  def key(self) -> str:
    """Content hash: identical data gives an identical key, whatever its source."""
    h = hashlib.sha256()
    for a in (self.lengths, self.labels):
      h.update(np.ascontiguousarray(a).tobytes())
    for row, n in zip(self.tokens, self.lengths):
      h.update(row[:int(np.max(n))].tobytes())
    return h.hexdigest()[:16]


class Splits(NamedTuple):
  a: Dataset  # the pool's first half: A of the data_seed split
  b: Dataset  # its second half
  test: Dataset
  labels: tuple
  dropped: dict  # split -> over-long examples dropped; "duplicates": train rows dropped as repeats
  pool: Dataset  # A then B: what `seed_halves` cuts again
  dev: Dataset  # task.n_dev rows held out before the pool: design choices, never reported


def seed_halves(n: int, data_seed: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
  """Rows of the pool (n rows) that make A and B: its halves in order (seed None: the data_seed
  split every seed shares), or a seed's own draw of them (a replicate: its own weak model, its
  own weak labels)."""
  half = n // 2
  order = np.arange(n) if seed is None else np.random.default_rng(
      [data_seed, 2, seed]).permutation(n)
  return order[:half], order[half:2 * half]


def _digest(tokens: np.ndarray) -> bytes:
  return hashlib.blake2b(np.ascontiguousarray(tokens).tobytes(), digest_size=16).digest()


def row_digests(ds: Dataset) -> list[bytes]:
  """One digest per row of its tokens: equal rows, equal digests. A pair's two texts count in
  either order (pairs are shown in a shuffled order: one pair in train and test may be flipped)."""
  if ds.tokens.ndim == 2:
    return [_digest(row[:n]) for row, n in zip(ds.tokens, ds.lengths)]
  return [hashlib.blake2b(b"".join(sorted(_digest(row[:n[j], j]) for j in range(len(n)))),
                          digest_size=16).digest() for row, n in zip(ds.tokens, ds.lengths)]


def deduplicate(train: Dataset, test: Dataset) -> tuple[Dataset, int]:
  """train without repeated rows (the first kept) and without any row equal to a test row: a
  text in both A and B, or in training and test, would let a model be scored on what it saw."""
  seen = set(row_digests(test))
  keep = []
  for i, d in enumerate(row_digests(train)):
    if d not in seen:
      seen.add(d)
      keep.append(i)
  return train.take(np.asarray(keep, np.int64)), len(train) - len(keep)


def tokenize(rows, task, task_cfg, labels, tokenizer, max_len) -> tuple[Dataset, int]:
  """Pairwise tasks format to ((text_a, text_b), label): tokens [N, max_len, 2], lengths
  [N, 2]; a pair is dropped when either text is too long."""
  pair = task.kind == "pairwise"
  formatted = [task.format(row, task_cfg, labels) for row in rows]
  width = 2 if pair else 1
  flat = tokenizer.encode_batch(t for text, _ in formatted for t in (text if pair else (text,)))
  ids, ys, dropped = [], [], 0
  for i, (_, y) in enumerate(formatted):
    ts = flat[i * width:(i + 1) * width]
    if any(len(t) > max_len or len(t) == 0 for t in ts):
      dropped += 1
      continue
    ids.append(ts)
    ys.append(y)
  tokens = np.zeros((len(ids), max_len, 2 if pair else 1), np.int32)
  lengths = np.zeros((len(ids), 2 if pair else 1), np.int32)
  for i, ts in enumerate(ids):
    for j, t in enumerate(ts):
      tokens[i, :len(t), j], lengths[i, j] = t, len(t)
  if not pair:
    tokens, lengths = tokens[..., 0], lengths[:, 0]
  return Dataset(tokens, lengths, np.int32(ys)), dropped


def balance(ds: Dataset, rng) -> Dataset:
  """Downsample every class to the rarest class's count."""
  counts = np.bincount(ds.labels)
  n = counts[counts > 0].min()
  idx = np.concatenate([rng.permutation(np.flatnonzero(ds.labels == c))[:n]
                        for c in range(len(counts)) if counts[c]])
  return ds.take(np.sort(idx))


def load_splits(task_cfg, tokenizer, max_len: int, data_seed: int) -> Splits:
  task = tasks.get(task_cfg.name)
  labels = task.labels(task_cfg)
  raw = task.load(task_cfg)
  rng = np.random.default_rng(data_seed)
  train, d_train = tokenize(raw["train"], task, task_cfg, labels, tokenizer, max_len)
  if "test" in raw:
    test, d_test = tokenize(raw["test"], task, task_cfg, labels, tokenizer, max_len)
    train = train.take(rng.permutation(len(train)))
  else:  # no test split: hold out a deterministic fraction of train
    perm = rng.permutation(len(train))
    n_test = int(round(len(train) * task_cfg.test_frac))
    test, train, d_test = train.take(perm[:n_test]), train.take(perm[n_test:]), 0
  train, n_dup = deduplicate(train, test)
  if n_dup:
    log.info("dropped %d train rows that repeat another train row or a test row", n_dup)
  if task_cfg.balance or task.balance:
    train, test = balance(train, rng), balance(test, rng)
    train = train.take(rng.permutation(len(train)))
  dev = train.take(np.arange(min(task_cfg.n_dev, len(train))))
  train = train.take(np.arange(len(dev), len(train)))
  if task_cfg.n_train:
    train = train.take(np.arange(min(task_cfg.n_train, len(train))))
  if task_cfg.n_test and "test" in raw:
    # A sample, not the file's first rows: test splits are often sorted (by label, source, date).
    pick = np.random.default_rng([data_seed, 1]).permutation(len(test))[:task_cfg.n_test]
    test = test.take(np.sort(pick))
  elif task_cfg.n_test:  # held out from train above: already in random order
    test = test.take(np.arange(min(task_cfg.n_test, len(test))))
  if len(train) < 2 or len(test) < 1:
    raise ValueError(f"config.task: too little data after filtering ({len(train)} train, "
                     f"{len(test)} test; {d_train + d_test} dropped as longer than {max_len})")
  half = len(train) // 2
  dropped = {"train": d_train, "test": d_test, "duplicates": n_dup}
  if d_train or d_test:
    log.warning("dropped %d train and %d test examples longer than %d tokens",
                d_train, d_test, max_len)
  pool = train.take(np.arange(2 * half))
  return Splits(pool.take(np.arange(half)), pool.take(np.arange(half, 2 * half)), test,
                labels, dropped, pool, dev)


def load_eval(name: str, task_cfg, tokenizer, max_len: int) -> Dataset:
  """Every row (train and test) of task `name`, formatted with `task_cfg`'s settings: an extra
  evaluation set (e.g. hhh_alignment for reward models)."""
  cfg = task_cfg.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.name = name
  task = tasks.get(name)
  raw = task.load(cfg)
  rows = raw["train"] + raw.get("test", [])
  ds, dropped = tokenize(rows, task, cfg, task.labels(cfg), tokenizer, max_len)
  if dropped:
    log.warning("eval task %s: %d of %d rows dropped as longer than max_len=%d", name, dropped,
                len(rows), max_len)
  if not len(ds):
    raise ValueError(f"config.eval_tasks: every row of {name!r} is longer than max_len={max_len}")
  return ds


def shared_prefix(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
  """(tokens [N, L], lengths [N]) of what the two texts of each pair share before they differ:
  for pairs built from a classification task, the text without its answer."""
  a, b = ds.tokens[..., 0], ds.tokens[..., 1]
  n = np.minimum(ds.lengths[:, 0], ds.lengths[:, 1])
  same = np.cumprod(a == b, axis=1).sum(1)
  lengths = np.minimum(same, n).astype(np.int32)
  tokens = np.where(np.arange(a.shape[1])[None] < lengths[:, None], a, 0).astype(a.dtype)
  return tokens, lengths


def text_rows(*datasets: Dataset, prefix_only: bool = False):
  """Language-modelling rows of `datasets` (both texts of a pair, or with `prefix_only` the
  part they share), labels dropped: (tokens [M, L], lengths [M], next-token targets [M, L - 1]
  -1 padded) for generative fine-tuning."""
  tokens, lengths = [], []
  for ds in datasets:
    if ds.tokens.ndim == 3 and prefix_only:
      t, n = shared_prefix(ds)
      tokens.append(t)
      lengths.append(n)
    elif ds.tokens.ndim == 3:
      tokens += [ds.tokens[..., j] for j in range(ds.tokens.shape[2])]
      lengths += [ds.lengths[:, j] for j in range(ds.lengths.shape[1])]
    else:
      tokens.append(ds.tokens)
      lengths.append(ds.lengths)
  tokens, lengths = np.concatenate(tokens), np.concatenate(lengths)
  keep = lengths >= 2  # a one-token text predicts nothing
  tokens, lengths = tokens[keep], lengths[keep]
  targets = np.full((len(tokens), tokens.shape[1] - 1), -1, np.int32)
  for i, n in enumerate(lengths):
    targets[i, :n - 1] = tokens[i, 1:n]
  return Dataset(tokens, lengths, np.zeros(len(tokens), np.int32)), targets


# ---------------------------------------------------------------------------------- batching
def bucket_length(n: int, buckets) -> int:
  for b in buckets:
    if n <= b:
      return b
  raise ValueError(f"length {n} exceeds the largest bucket {buckets[-1]}")


def steps_per_epoch(n: int, batch_size: int) -> int:
  return n // batch_size


def batch_indices(n: int, step: int, batch_size: int, seed: int) -> np.ndarray:
  """Rows of the optimizer batch of `step`: a pure function of (seed, step), so a resumed run
  or one with another process count sees the same global order."""
  epoch, i = divmod(step, steps_per_epoch(n, batch_size))
  return _permutation(n, seed, epoch)[i * batch_size:(i + 1) * batch_size].copy()


@functools.lru_cache(maxsize=8)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  """The epoch's order, computed once per (rows, seed, epoch), not once per step."""
  perm = np.random.default_rng([seed, epoch]).permutation(n)
  perm.flags.writeable = False
  return perm


def train_batch(ds: Dataset, targets: np.ndarray, step: int, *, batch_size: int, accum: int,
                seed: int, buckets, rows=None) -> dict:
  """The batch of `step`, shaped [accum, micro, L]; `rows` keeps only these micro-batch rows
  (the ones this process feeds). The bucket L is chosen from the whole global batch."""
  idx = batch_indices(len(ds), step, batch_size, seed).reshape(accum, batch_size // accum)
  length = bucket_length(int(ds.lengths[idx].max()), buckets)
  if rows is not None:
    idx = idx[:, rows]
  return {"tokens": ds.tokens[idx, :length], "lengths": ds.lengths[idx],
          "targets": targets[idx].astype(np.int32) if np.issubdtype(targets.dtype, np.integer)
          else targets[idx].astype(np.float32)}


def eval_batches(ds: Dataset, batch_size: int, buckets):
  """(indices, batch) over `ds` sorted by length (less padding); the last batch is padded with
  length-1 dummy rows, which `indices` (the real rows, in order) leaves out."""
  longest = ds.lengths.reshape(len(ds), -1).max(-1)
  order = np.argsort(longest, kind="stable")
  for start in range(0, len(order), batch_size):
    idx = order[start:start + batch_size]
    length = bucket_length(int(longest[idx].max()), buckets)
    tokens = np.zeros((batch_size, length) + ds.tokens.shape[2:], np.int32)
    lengths = np.ones((batch_size,) + ds.lengths.shape[1:], np.int32)
    tokens[:len(idx)] = ds.tokens[idx, :length]
    lengths[:len(idx)] = ds.lengths[idx]
    yield idx, {"tokens": tokens, "lengths": lengths}


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
  return np.eye(num_classes, dtype=np.float32)[labels]
