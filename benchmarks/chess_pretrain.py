"""Pretraining throughput and zero-shot puzzle accuracy of chess rungs (a table).

  python benchmarks/chess_pretrain.py --workdir=/tmp/chess_bench [--steps=200] \
      [--sizes=tiny-1,tiny-2,tiny-3] [--player=stockfish] [--config=default] \
      [--set chess.corpus.min_gap=100 --set chess.corpus.depth=3 ...]

Runs the corpus and pretraining stages of configs/chess_bootstrap.py (cached in the workdir, so
rerunning with more steps reuses the corpus) for each size with the same step budget.
"""
import argparse
import ast
import functools
import importlib.util
import logging
import os
import time

from w2s_jax.config import ladder, ladder_rungs, rung_spec
from w2s_jax.models import model_config, param_count

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--sizes", default="tiny-1,tiny-2,tiny-3")
  ap.add_argument("--player", default="")
  ap.add_argument("--config", default="default")
  ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                  help="a config override, as --config.KEY=VALUE would be (a Python literal)")
  a = ap.parse_args()
  logging.getLogger("w2s_jax").setLevel(logging.WARNING)
  spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, "configs",
                                                                    "chess_bootstrap.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  cfg = module.get_config(a.config)
  if a.player:
    cfg.chess.corpus.player = a.player
  for item in a.set:
    key, _, value = item.partition("=")
    parent, _, leaf = key.rpartition(".")
    node = functools.reduce(getattr, parent.split("."), cfg) if parent else cfg
    setattr(node, leaf, ast.literal_eval(value))
  cfg.chess.n_transfer = 100  # only pretraining runs here
  cfg.ladder = ladder(*(rung_spec(s, pretrain_steps=a.steps) for s in a.sizes.split(",")))
  from w2s_jax import experiment, graph  # noqa: PLC0415
  rt, g, (b,) = experiment.plan(cfg, a.workdir)
  t0 = time.time()
  corpus = b.corpus()
  graph.execute(graph.upstream(g, [corpus]), rt.store)
  cm = rt.store.metrics("corpus", corpus.key)
  print(f"corpus: {cm['positions']} positions ({cfg.chess.corpus.player}), "
        f"{cm['positions'] / cm['seconds']:.0f}/s, {time.time() - t0:.0f}s this run")
  print(f"{'size':>10} {'params':>10} {'steps':>6} {'batch':>6} {'ex/s':>8} {'s/step':>7} "
        f"{'zero-shot masked':>16} {'unmasked':>9}")
  for i, rung in enumerate(ladder_rungs(cfg)):
    zero = b.zero_shot[i]
    graph.execute(graph.upstream(g, list(zero.values())), rt.store)
    m = rt.store.metrics("pretrain", b.pretrain(i).key)
    acc = {mask: rt.store.metrics("predict", s.key)["acc"] for mask, s in zero.items()}
    n = param_count(model_config(rung.size, b.codec.vocab_size), 0)
    bs = cfg.chess.pretrain.batch_size
    print(f"{rung.size:>10} {n:>10,} {m['steps']:>6} {bs:>6} "
          f"{m['steps'] * bs / m['train_seconds']:>8.0f} {m['train_seconds'] / m['steps']:>7.3f} "
          f"{acc.get(True, float('nan')):>16.4f} {acc[False]:>9.4f}", flush=True)


if __name__ == "__main__":
  main()
