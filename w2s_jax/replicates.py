"""The rows of one classification or reward task, and each replicate seed's cut of them.

`Data` loads a task once (shared by a sweep's configs: `data_for`) and cuts the pool into A and
B per seed (seed_scope "split") or once for every seed ("batch_order"); `Cut` is one seed's
splits; `seeded_split` says which splits a seed draws. The pipeline's stages name a seed's split
by its content key and, through `Data.seeded`, by what it stands for whatever the seed.
"""
import logging
from typing import NamedTuple

import numpy as np

from w2s_jax import zero_shot as zs_lib
from w2s_jax.data import dataset as data_lib, tasks
from w2s_jax.data.tokenizers import get_tokenizer
from w2s_jax.errors import ConfigError

log = logging.getLogger("w2s_jax")


# The splits a replicate seed cuts from the pool (A, B and what is taken of them); the others
# (test, the zero-shot prompts, eval sets) are one for every seed.
SEED_SPLITS = ("a", "b", "a_train", "a_val", "a_strong", "b_strong", "b_student", "b_val")


def seeded_split(split: str) -> bool:
  """Whether a split is cut from the pool by the seed: SEED_SPLITS, bootstrapping's chunks of B
  (b1, b2, ...) and the rows derived from a seed's split (`Data.derive`: "a_train~bagged0of4")."""
  return split in SEED_SPLITS or (split[:1] == "b" and split[1:].isdigit()) or "~" in split


class Data:
  """The rows of one (task, tokenizer, lengths, data seed), shared by a sweep's configs, and each
  replicate seed's cut of them (`sets(seed)`).

  With seed_scope "split" a seed draws its own A/B halves of the pool (so its own weak model and
  weak labels); with "batch_order" every seed shares the data_seed halves. The strong models may
  train on the first `task.n_strong_train` rows of A and B only. With model selection
  (early_stopping.enabled) each role holds out the last rows of its own training data: the weak
  model and the ceiling A's (`a_val`, ground truth), the students B's (`b_val`, weak labels)."""

  def __init__(self, cfg):
    self.tokenizer = get_tokenizer(cfg.tokenizer)
    self.splits = data_lib.load_splits(cfg.task, self.tokenizer, cfg.max_len, cfg.data_seed)
    self.pairwise = tasks.get(cfg.task.name).kind == "pairwise"
    self.num_classes = cfg.num_classes or len(self.splits.labels)
    self.data_seed, self.per_seed = cfg.data_seed, cfg.seed_scope == "split"
    self.n_strong, self.select = cfg.task.n_strong_train, cfg.early_stopping.enabled
    self.n_chunks = len(cfg.bootstrap.via) + 1 if cfg.bootstrap.via else 0
    self.pool = self.splits.pool
    self.shared = {"test": self.splits.test, "pool": self.pool}
    if len(self.splits.dev):
      self.shared["dev"] = self.splits.dev
    half, m = len(self.splits.a), len(self.splits.b)
    m = min(self.n_strong, m) if self.n_strong else m
    self.n_val = (cfg.early_stopping.val_rows or max(1, m // 10)) if self.select else 0
    if self.n_val >= half:
      raise ConfigError(f"config key 'early_stopping.val_rows': {self.n_val} held-out rows of "
                        f"A's and B's {half} leave none to train on")
    # The zero-shot baseline: the test rows with the task's prompt appended (classification), or
    # the pairs themselves scored by likelihood (pairwise).
    self.widths = {}  # split -> its rows' padded width, where that exceeds max_len
    self.answer_ids, self.zero_shot_why = None, ""
    task = tasks.get(cfg.task.name)
    if not self.pairwise and task.zero_shot is None:
      self.zero_shot_why = f"task {cfg.task.name!r} has no zero-shot prompt"
    elif not self.pairwise:
      suffix, words = task.zero_shot
      self.answer_ids, self.zero_shot_why = zs_lib.answer_tokens(self.tokenizer, words)
      ds = zs_lib.prompted(self.shared["test"], zs_lib.bare_tokens(self.tokenizer, suffix))
      self.shared["zs_test"] = ds
      self.widths["zs_test"] = ds.tokens.shape[1]
    for name in cfg.eval_tasks:
      self.shared[f"eval:{name}"] = data_lib.load_eval(name, cfg.task, self.tokenizer,
                                                       cfg.eval_max_len or cfg.max_len)
    self.shared_keys = {name: ds.key() for name, ds in self.shared.items()}
    self._seeds = {}
    self.derived = {}  # derived split name -> how a seed draws it (Data.derive)
    log.info("data %s: A %d, B %d, test %d examples (dropped: %s); strong models train on %d "
             "of A and %d of B; %d held out for model selection; %d classes; %s",
             cfg.task.name, half, len(self.splits.b), len(self.splits.test), self.splits.dropped,
             len(self.rows(cfg.seeds[0])["a_strong"]), len(self.rows(cfg.seeds[0])["b_student"]),
             self.n_val, self.num_classes, "A/B drawn per seed" if self.per_seed else
             "one A/B split for every seed")

  def cut(self, seed: int) -> "Cut":
    """The seed's cut of the pool (SEED_SPLITS, bootstrapping's chunks, derived splits): one
    cut for every seed with seed_scope batch_order."""
    seed = seed if self.per_seed else None
    if seed not in self._seeds:
      a, b = data_lib.seed_halves(len(self.pool), self.data_seed, seed)
      fit = len(a) - self.n_val  # rows before the held-out ones
      strong = lambda idx: idx[:min(self.n_strong, fit) if self.n_strong else fit]  # noqa: E731
      rows = {"a": a, "b": b, "a_train": a[:fit], "a_val": a[fit:], "a_strong": strong(a),
              "b_strong": b[:self.n_strong] if self.n_strong else b, "b_student": strong(b),
              "b_val": b[fit:]}
      # Bootstrapping: the student rows of B in consecutive chunks b1, b2, ...
      per = len(rows["b_student"]) // max(self.n_chunks, 1)
      rows.update({f"b{t + 1}": b[t * per:(t + 1) * per] for t in range(self.n_chunks)})
      sets = {name: self.pool.take(idx) for name, idx in rows.items()}
      self._seeds[seed] = Cut(rows, sets, {name: ds.key() for name, ds in sets.items()}, {})
    return self._seeds[seed]

  def rows(self, seed: int) -> dict:
    """Split name -> the pool rows it holds, for `seed`."""
    return self.cut(seed).rows

  def sets(self, seed: int) -> dict:
    """Split name -> Dataset: the seed's cut of the pool and the shared splits."""
    return {**self.cut(seed).sets, **self.shared}

  def keys(self, seed: int) -> dict:
    return {**self.cut(seed).keys, **self.shared_keys}

  def derive(self, seed: int, name: str, rows: np.ndarray, how: str) -> str:
    """Register `name` (containing "~") as a split of `seed`: the pool rows `rows`, drawn from
    the seed's own splits (an ensemble member's resample of A) as `how` says. `how` is what the
    split stands for whatever the seed, so it must not name a count that varies by seed."""
    cut = self.cut(seed)
    if name not in cut.rows:
      cut.rows[name], cut.sets[name] = rows, self.pool.take(rows)
      cut.keys[name] = cut.sets[name].key()
      self.derived[name] = how
      cut.seeded.clear()
    return name

  def in_b(self, split: str) -> slice:
    """Where a split cut from B lies in B (the rows of a predict stage over "b": its labels)."""
    n, b = len(self.splits.b), self.rows(0)  # every seed cuts B alike: only its rows differ
    start = 0
    if split.startswith("b") and split[1:].isdigit():
      start = (int(split[1:]) - 1) * len(b[split])
    elif split == "b_val":
      start = n - self.n_val
    elif split not in ("b", "b_strong", "b_student"):
      raise ValueError(f"split {split!r} is not cut from B")
    return slice(start, start + len(b[split]))

  def seeded(self, seed: int) -> dict:
    """The seed's own split keys -> what they stand for whatever the seed (Stage.seeded), so
    that the seeds of one config share a recipe and pool."""
    if not self.per_seed:
      return {}
    cut = self.cut(seed)
    if not cut.seeded:
      pool = self.shared_keys["pool"]
      cut.seeded.update({key: f"{name} ({self.derived[name]}) of pool {pool} cut by the seed"
                         if name in self.derived else
                         f"{name} ({len(cut.sets[name])} rows) of pool {pool} cut by the seed"
                         for name, key in cut.keys.items()})
    return dict(cut.seeded)  # a stage keeps its own: derive() refills the cut's


class Cut(NamedTuple):
  """One seed's splits of the pool: name -> pool rows, Dataset, content key; and the keys'
  stand-ins (Data.seeded, filled on first use)."""
  rows: dict
  sets: dict
  keys: dict
  seeded: dict


def data_for(cfg, rt) -> Data:
  es = cfg.early_stopping
  key = ("classification", cfg.task.to_json(), cfg.tokenizer, cfg.max_len, cfg.eval_max_len,
         cfg.data_seed, cfg.num_classes, tuple(cfg.eval_tasks), es.enabled,
         es.val_rows if es.enabled else 0, cfg.seed_scope, len(cfg.bootstrap.via))
  return rt.memo(key, lambda: Data(cfg))
