"""Replicate seeds in one program, measured in the stage graph: the train stages' wall time of a
config at K seeds with `train.batch_seeds` (probes of every seed as one vmapped program) and
without (one by one), beside the same config at one seed; prints a table.

  python benchmarks/seeds_in_one_program.py [--seeds 5] [--variants probe_pair,vision_tiny,nlp_tiny]

Rows: `probe_pair` (configs/nlp.py:tiny with a probed strong model: its ceiling and students are
probes of 1,000 steps, its weak model a fine-tune; `_300`, `_100`: shorter probes), `vision_tiny` (configs/vision.py:tiny: every role a probe)
and `nlp_tiny` (every role a full fine-tune: never batched, the measured rule). Each cell runs
in a fresh workdir; "train s" sums the train stages' seconds (a batch's stages share its time),
"x one seed" is that over the one-seed run's.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import logging  # noqa: E402

from w2s_jax import experiment, stages  # noqa: E402
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


def train_seconds(cfg) -> tuple[float, float]:
  with tempfile.TemporaryDirectory() as work:
    t0 = time.time()
    rt, graph, _ = experiment.plan(cfg, work)
    experiment.run(cfg, work)
    wall = time.time() - t0
    store = stages.StageStore(work)
    return sum(store.metrics(s.kind, s.key)["seconds"] for s in graph if s.kind == "train"), wall


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
