"""Real processes: a SIGKILL mid-training then a restart, and 2 processes x 2 devices against
1 process x 4 devices, through the command line and launch/local.sh."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBERS = ("weak_acc", "ceiling_acc", "student_acc", "pgr", "weak_auroc", "ceiling_auroc",
           "student_auroc", "agreement", "n_test")


def env(devices):
  return dict(os.environ, PYTHONPATH=ROOT,
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return {r["id"]: r for r in json.load(f)["runs"]}


def assert_same_results(a, b, atol):
  assert a.keys() == b.keys()
  for k in a:
    for field in NUMBERS:
      assert a[k][field] == pytest.approx(b[k][field], abs=atol), (k, field)


def main_cmd(workdir, *extra):
  return [sys.executable, "-m", "w2s_jax.main", "--config=configs/nlp.py:tiny",
          f"--workdir={workdir}", *extra]


def test_sigkill_at_a_random_moment_then_restart_gives_the_same_results(tmp_path):
  extra = ("--config.task.n_train=2000", "--config.train.checkpoint_every=20",
           "--config.losses=('xent',)")
  subprocess.run(main_cmd(tmp_path / "ref", *extra), cwd=ROOT, env=env(2), check=True,
                 capture_output=True, timeout=600)
  rng = random.Random()
  seed = rng.randrange(10 ** 6)
  rng.seed(seed)
  stage = rng.choice(["[gt:tiny-1", "[gt:tiny-llama-2", "[student:"])
  delay = rng.uniform(0.0, 1.5)
  proc = subprocess.Popen(main_cmd(tmp_path / "run", *extra), cwd=ROOT, env=env(2),
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
  for line in proc.stderr:  # past the checkpoints of steps 20 and 40 of that stage
    if stage in line and "step 51/" in line:
      break
  time.sleep(delay)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, f"finished before the kill (seed {seed})"
  restart = subprocess.run(main_cmd(tmp_path / "run", *extra), cwd=ROOT, env=env(2),
                           capture_output=True, text=True, timeout=600)
  assert restart.returncode == 0, restart.stderr[-3000:]
  assert "resumed from the checkpoint" in restart.stderr or "cached" in restart.stderr
  assert_same_results(results(tmp_path / "run"), results(tmp_path / "ref"), atol=1e-7)


def test_two_processes_of_two_devices_match_one_process_of_four(tmp_path):
  # xent only: logconf's hard labels flip when an example's margin is within rounding of the
  # batch threshold, and two collective implementations (in-process, gloo) round differently;
  # its runs then diverge on any change of topology (BUILD_NOTES.md, "Cross-topology results").
  losses = "--config.losses=('xent',)"
  single = subprocess.run(main_cmd(tmp_path / "one", losses), cwd=ROOT, env=env(4),
                          capture_output=True, text=True, timeout=900)
  assert single.returncode == 0, single.stderr[-3000:]
  multi = subprocess.run(["bash", "launch/local.sh", "2", "2", "--config=configs/nlp.py:tiny",
                          f"--workdir={tmp_path / 'two'}", losses], cwd=ROOT, env=env(2),
                         capture_output=True, text=True, timeout=900)
  assert multi.returncode == 0, multi.stderr[-5000:]
  assert "process 0 of 2" in multi.stderr and "process 1 of 2" in multi.stderr
  assert multi.stdout.count("median PGR [xent]") == 1  # only process 0 reports
  assert_same_results(results(tmp_path / "two"), results(tmp_path / "one"), atol=1e-4)
