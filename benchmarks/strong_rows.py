"""How many rows a pretrained strong model's ceiling needs: one ceiling stage per recipe.

  python benchmarks/strong_rows.py --recipe "256 train.batch_size=16 strong.lr=1e-4" \\
      --recipe "256 train.batch_size=16 strong.lr=5e-4 strong.lora_rank=8"

Each recipe is `N_STRONG_TRAIN KEY=VALUE ...` over `configs/nlp.py:offline` (VADER sentences,
2,000 train rows -> A = B = 1,000, 400 test rows, max_len 64). Prints the weak model's and the
ceiling's test accuracy and the ceiling stage's wall time. Stages are cached in --workdir.
"""
import argparse
import ast
import importlib.util
import os

from w2s_jax import experiment, graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def offline_config():
  spec = importlib.util.spec_from_file_location("nlp", os.path.join(ROOT, "configs", "nlp.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("offline")


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--recipe", action="append", required=True)
  p.add_argument("--workdir", default="/tmp/w2s_strong_rows")
  a = p.parse_args()
  rows = []
  for i, recipe in enumerate(a.recipe):
    n, *overrides = recipe.split()
    c = offline_config()
    c.task.n_train, c.task.n_test, c.task.n_strong_train = 2000, 400, int(n)
    for kv in overrides:
      key, value = kv.split("=", 1)
      *path, last = key.split(".")
      node = c
      for part in path:
        node = node[part]
      node[last] = ast.literal_eval(value)
    rt, g, (b,) = experiment.plan(c, os.path.join(a.workdir, str(i)))
    weak = b.train(c.weak, 0, "a", None, "xent", role="weak")
    ceiling = b.train(c.strong, 0, "a_strong", None, "xent", role="ceiling")
    scores = [b.predict(c.weak, weak, "test", 0), b.predict(c.strong, ceiling, "test", 0)]
    graph.execute(graph.upstream(g, scores), rt.store)
    weak_acc, ceil_acc = (rt.store.metrics("predict", s.key)["acc"] for s in scores)
    m = rt.store.metrics("train", ceiling.key)
    rows.append((recipe, weak_acc, ceil_acc, m["steps"], m["seconds"]))
  print(f"{'recipe':>56} {'weak':>6} {'ceiling':>7} {'steps':>5} {'stage s':>7}")
  for recipe, weak, ceil, steps, secs in rows:
    print(f"{recipe:>56} {weak:6.3f} {ceil:7.3f} {steps:5d} {secs:7.0f}")


if __name__ == "__main__":
  main()
