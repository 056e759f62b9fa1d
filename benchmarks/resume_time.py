"""Time to resume after a kill: SIGKILL a tiny run inside its strong model's gt stage (after two
checkpoints), restart it, and time the restart until it has restored the checkpoint and until it
finishes; compare with an uninterrupted run. Prints a table.

  python benchmarks/resume_time.py [--devices 1]
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--config=configs/nlp.py:tiny", "--config.train.checkpoint_every=20",
        "--config.losses=('xent',)"]


def start(workdir, devices):
  env = dict(os.environ, PYTHONPATH=ROOT,
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return subprocess.Popen([sys.executable, "-m", "w2s_jax.main", f"--workdir={workdir}", *ARGS],
                          cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          text=True)


def wait_for(proc, text):
  for line in proc.stderr:
    if text in line:
      return time.time()
  return float("nan")


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--devices", type=int, default=1)
  a = p.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.time()
    ref = start(os.path.join(tmp, "ref"), a.devices)
    ref.stderr.read()
    ref.wait()
    uninterrupted = time.time() - t0
    t0 = time.time()
    run = start(os.path.join(tmp, "run"), a.devices)
    killed_at = wait_for(run, "[gt:tiny-llama-2:s0] step 51/") - t0
    run.send_signal(signal.SIGKILL)
    run.wait()
    t1 = time.time()
    restart = start(os.path.join(tmp, "run"), a.devices)
    resumed = wait_for(restart, "resumed from the checkpoint") - t1
    restart.stderr.read()
    restart.wait()
    total = time.time() - t1
  print(f"{'devices':>7} {'uninterrupted s':>15} {'killed at s':>11} {'restart -> restored s':>21} "
        f"{'restart total s':>15} {'killed + restart s':>18}")
  print(f"{a.devices:>7} {uninterrupted:15.1f} {killed_at:11.1f} {resumed:21.1f} {total:15.1f} "
        f"{killed_at + total:18.1f}")


if __name__ == "__main__":
  main()
