"""Replicate seeds in one program, measured in the stage graph: the train stages' wall time of a
config at K seeds with `train.batch_seeds` (probes of every seed as one vmapped program) and
without (one by one), beside the same config at one seed; prints a table.

  python benchmarks/seeds_in_one_program.py [--seeds 5] [--variants probe_pair,vision_tiny,nlp_tiny]

Rows: `probe_pair` (configs/nlp.py:tiny with a probed strong model: its ceiling and students are
probes of 1,000 steps, its weak model a fine-tune; `_300`, `_100`: shorter probes),
`vision_tiny` (configs/vision.py:tiny: every role a probe) and `nlp_tiny` (every role a full
fine-tune: never batched, the measured rule). Each cell runs in a fresh workdir; "train s" is
the wall time during which a train stage (or a batch of them) ran, "x one seed" that over the
one-seed run's.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import logging  # noqa: E402

from w2s_jax import experiment, graph as graph_lib  # noqa: E402
from w2s_jax.assets import __main__ as assets_cli  # noqa: E402


def probe_pair(steps: int):
  c = assets_cli.config_of("nlp:tiny")
  c.task.update(n_train=2000, n_test=256)
  c.strong.update(mode="probe", lr=1e-2)
  c.schedules.probe.steps = steps  # 1000: the reproduce run's probe schedule
  return c


VARIANTS = {"probe_pair": lambda: probe_pair(1000), "probe_pair_300": lambda: probe_pair(300),
            "probe_pair_100": lambda: probe_pair(100),
            "vision_tiny": lambda: assets_cli.config_of("vision:tiny"),
            "nlp_tiny": lambda: assets_cli.config_of("nlp:tiny")}


def timed_train_stages(graph, spans: list) -> None:
  """Wrap the train stages' programs (their own, or their batch's) to record (start, end)."""

  def timed(fn):
    def run(*a):
      t0 = time.time()
      out = fn(*a)
      spans.append((t0, time.time()))
      return out
    return run
  for s in graph:
    if s.kind == "train":
      s.run = timed(s.run)
      if s.batch and s.batch.run:
        s.batch = s.batch._replace(run=timed(s.batch.run))


def union(spans) -> float:
  """Seconds covered by the spans (stages that ran at the same time count once)."""
  total, end = 0.0, float("-inf")
  for a, b in sorted(spans):
    total += max(0.0, b - max(a, end))
    end = max(end, b)
  return total


def train_seconds(cfg) -> tuple[float, float]:
  """(wall seconds during which a train stage ran, the run's wall seconds)."""
  spans, execute = [], graph_lib.execute

  def timed_execute(graph, store, **kw):
    timed_train_stages(graph, spans)
    return execute(graph, store, **kw)
  with tempfile.TemporaryDirectory() as work:
    t0 = time.time()
    graph_lib.execute = timed_execute
    try:
      experiment.run(cfg, work)
    finally:
      graph_lib.execute = execute
    return union(spans), time.time() - t0


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", type=int, default=5)
  p.add_argument("--variants", default=",".join(VARIANTS))
  a = p.parse_args()
  logging.getLogger("w2s_jax").setLevel(logging.WARNING)
  print(f"| config | seeds | batch_seeds | train s | x one seed | run wall s |")
  print("|---|---|---|---|---|---|")
  for name in a.variants.split(","):
    one = None
    for seeds, batched in ((1, True), (a.seeds, False), (a.seeds, True)):
      cfg = VARIANTS[name]()
      cfg.seeds, cfg.train.batch_seeds = tuple(range(seeds)), batched
      train_s, wall = train_seconds(cfg)
      one = one or train_s
      print(f"| {name} | {seeds} | {batched} | {train_s:.1f} | {train_s / one:.2f} | {wall:.0f} |",
            flush=True)


if __name__ == "__main__":
  main()
