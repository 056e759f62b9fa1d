"""The `offline` variant's weak-to-strong table over BIG-bench tasks, losses and seeds.

  python benchmarks/offline_table.py --mode probe --tasks bigbench-multiemo-sentence,\\
      bigbench-strategyqa,bigbench-vitaminc --seeds 0,1,2 [--n_train 1000 --n_test 500]

Each task is one `python -m w2s_jax.main --config=configs/nlp.py:offline` run (weak: tiny-2 from
scratch; strong: SmolLM2-135M in `--mode` probe, full or lora), in WORKDIR/TASK-MODE, so reruns
reuse finished stages. Prints weak, ceiling and student accuracy, PGR with its 95% bootstrap
interval over test examples, and the stages' wall time.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--tasks", default="bigbench-multiemo-sentence,bigbench-strategyqa,"
                                    "bigbench-vitaminc")
  p.add_argument("--mode", default="probe", choices=["probe", "full", "lora"])
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--n_train", type=int, default=1000)
  p.add_argument("--n_test", type=int, default=500)
  p.add_argument("--workdir", default="/tmp/w2s_offline_table")
  a = p.parse_args()
  mode = {"probe": ["--config.strong.mode=probe", "--config.strong.lr=1e-3"],
          "full": [], "lora": ["--config.strong.lora_rank=8", "--config.strong.lr=1e-4"]}[a.mode]
  rows = []
  for task in a.tasks.split(","):
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "w2s_jax.main", "--config=configs/nlp.py:offline",
         f"--workdir={a.workdir}/{task}-{a.mode}", f"--config.task.name={task}",
         f"--config.task.n_train={a.n_train}", f"--config.task.n_test={a.n_test}",
         "--config.max_len=128", "--config.train.buckets=(32,64,128)", "--config.train.epochs=4",
         f"--config.seeds=({a.seeds},)", *mode], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
      print(f"{task}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
      continue
    with open(f"{a.workdir}/{task}-{a.mode}/results.json") as f:
      for r in json.load(f)["runs"]:
        rows.append(dict(r, wall=time.time() - t0))
  print(f"mode {a.mode}; {a.n_train} train rows (A = B = half), {a.n_test} test rows per task")
  print(f"{'task':>28} {'loss':>8} {'seed':>4} {'weak':>6} {'ceiling':>7} {'student':>7} "
        f"{'PGR':>6} {'95% CI':>16} {'weak s':>6} {'ceil s':>6} {'stud s':>6}")
  for r in rows:
    ci = "[{:+.2f}, {:+.2f}]".format(*r["pgr_ci95"]) if None not in r["pgr_ci95"] else "n/a"
    pgr = f"{r['pgr']:6.2f}" if r["pgr"] is not None else "   n/a"
    s = r["seconds"]
    print(f"{r['task']:>28} {r['loss']:>8} {r['seed']:>4} {r['weak_acc']:6.3f} "
          f"{r['ceiling_acc']:7.3f} {r['student_acc']:7.3f} {pgr} {ci:>16} "
          f"{s['weak']:6.0f} {s['ceiling']:6.0f} {s['student']:6.0f}")


if __name__ == "__main__":
  main()
