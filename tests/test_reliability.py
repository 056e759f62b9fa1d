"""No silent partial data, every failure named: bad input files, data that cannot train, and a run
killed at random moments that still ends with the results of an uninterrupted one."""
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from w2s_jax.data import checks, dataset as data_lib, tasks
from w2s_jax.data.tokenizers import ByteTokenizer
from w2s_jax.errors import ConfigError, DataError
from tests.conftest import task_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------ input files
def load(path):
  return data_lib.load_splits(task_cfg(name="jsonl", train_file=str(path)), ByteTokenizer(), 64, 0)


@pytest.mark.parametrize("content, message", [
    (b'{"text": "ok", "label": 0}\n{"text": "caf\xe9", "label": 1}\n',
     r"train.jsonl:2: not UTF-8 text \(byte 0xe9 at column 14\)"),
    (b"\x1f\x8b\x08\x00\x00\x00", r"train.jsonl:1: not UTF-8 text"),  # a gzip file, renamed
    (b"", r"train.jsonl: no rows \(an empty JSONL file\)"),
    (b"\n  \n", r"train.jsonl: no rows"),
])
def test_bad_jsonl_files_name_the_file_and_line(tmp_path, content, message):
  (tmp_path / "train.jsonl").write_bytes(content)
  with pytest.raises(DataError, match=message):  # today: UnicodeDecodeError, or no file name
    load(tmp_path / "train.jsonl")


def test_missing_data_files_are_data_errors(tmp_path):
  with pytest.raises(DataError, match=r"nowhere.jsonl: data file not found"):
    load(tmp_path / "nowhere.jsonl")
  with pytest.raises(ConfigError, match="'task.train_file': required"):
    tasks.load_jsonl(task_cfg(name="jsonl"))


# ------------------------------------------------------------------------------ data checks
def ds(labels, lengths=None):
  labels = np.asarray(labels, np.int32)
  lengths = np.full(len(labels), 5, np.int32) if lengths is None else np.asarray(lengths)
  return data_lib.Dataset(np.zeros((len(labels), 8), np.int32), lengths, labels)


GOOD = ds([0, 1] * 40)


@pytest.mark.parametrize("datasets, kw, message", [
    ({"a": ds([1] * 80), "test": GOOD}, {},
     r"split 'a' holds a single class \('positive': 80 of 80 rows\)"),
    ({"a": GOOD, "test": ds([0] * 30)}, {}, r"split 'test' holds a single class"),
    ({"a": GOOD, "b_strong": ds([0, 1] * 10)}, {"batch_sizes": {"b_strong": 32}},
     r"split 'b_strong' has 20 rows, fewer than one batch of 32"),
    ({"a": GOOD, "test": ds([])}, {}, r"split 'test' has no rows"),
    ({"a": ds([0, 1] * 5, [5, 0] + [3] * 8)}, {},
     r"split 'a': 1 empty text\(s\), the first at row 1"),
    ({"a": ds([0, 1] * 5, [[5, 5], [5, 0]] * 5)}, {}, r"split 'a': 5 empty text"),  # pairs
    ({"a": ds([0, 1, 2, 1])}, {}, r"split 'a': label 2 at row 2 is outside the 2 classes"),
])
def test_data_that_cannot_train_is_refused_before_training(datasets, kw, message):
  with pytest.raises(DataError, match=message):
    checks.check_splits(datasets, 2, label_names=("negative", "positive"), **kw)


def test_good_data_and_the_exemptions_pass():
  checks.check_splits({"a": GOOD, "b": GOOD, "test": GOOD}, 2, {"a": 32, "b": 80})
  checks.check_splits({"a": ds([0, 1], [0, 4])}, 2, allow_empty_text=True)
  checks.check_splits({"corpus": ds([7] * 10)}, 0)  # not a classification: no class checks


def test_a_one_class_training_file_is_refused_in_seconds(tmp_path):
  """Today this trains for minutes and ends with PGR nan and AUROC null."""
  rows = [json.dumps({"text": f"row {i}", "label": 1}) for i in range(200)]
  (tmp_path / "t.jsonl").write_text("\n".join(rows) + "\n")
  s = load(tmp_path / "t.jsonl")
  t0 = time.perf_counter()
  with pytest.raises(DataError, match="split 'a' holds a single class"):
    checks.check_splits({"a": s.a, "b": s.b, "test": s.test}, len(s.labels),
                        {"a": 32, "b": 32}, label_names=s.labels)
  assert time.perf_counter() - t0 < 1


# ---------------------------------------------------------------------- random SIGKILLs
EXTRA = ("--config.task.n_train=600", "--config.train.epochs=1", "--config.losses=('xent',)",
         "--config.train.lr=1e-3", "--config.train.checkpoint_every=3")
COMPARED = ("acc", "auroc", "pgr", "agreement", "n_test")


def main_cmd(workdir):
  return [sys.executable, "-m", "w2s_jax.main", "--config=configs/nlp.py:tiny",
          f"--workdir={workdir}", *EXTRA]


def env():
  return dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="--xla_force_host_platform_device_count=2")


def runs(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return {r["id"]: r for r in json.load(f)["runs"]}


def assert_same_runs(got, want, context):
  """The runs' content: their stage keys and every score (the file may gain other fields, and
  timings differ)."""
  assert got.keys() == want.keys(), context
  for k, w in want.items():
    assert got[k]["stage_keys"] == w["stage_keys"], (k, context)
    for field, value in w.items():
      if any(part in field for part in COMPARED) and isinstance(value, (int, float)):
        assert got[k][field] == pytest.approx(value, abs=1e-6), (k, field, context)


def committed(workdir):
  return len(glob.glob(os.path.join(workdir, "stages", "*", "COMMIT")))


@pytest.mark.slow
def test_three_random_sigkills_then_a_rerun_give_the_uninterrupted_results(tmp_path):
  t0 = time.time()
  ref = subprocess.run(main_cmd(tmp_path / "ref"), cwd=ROOT, env=env(), capture_output=True,
                       text=True, timeout=900)
  assert ref.returncode == 0, ref.stderr[-3000:]
  duration, n_stages = time.time() - t0, committed(tmp_path / "ref")
  seed = random.randrange(10 ** 6)
  rng, attempts = random.Random(seed), []
  while sum(rc == -signal.SIGKILL for *_, rc in attempts) < 3 and len(attempts) < 10:
    # A random moment: up to a mean stage's time after a random number (from those committed
    # to all) of stages are committed: start-up, training, a stage save, the results. An
    # attempt that finishes first is simply run again (all cached: the kill lands in start-up).
    target = rng.randint(committed(tmp_path / "run"), n_stages)
    delay = rng.uniform(0, duration / n_stages)
    proc = subprocess.Popen(main_cmd(tmp_path / "run"), cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and committed(tmp_path / "run") < target:
      time.sleep(0.02)
    try:
      proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait(timeout=60)
    attempts.append((target, round(delay, 1), proc.returncode))
  context = (f"seed {seed}: (after stage, delay s, exit status) {attempts}; {n_stages} "
             f"stages, uninterrupted run {duration:.0f} s")
  print(context)  # -s shows where the kills landed
  assert sum(rc == -signal.SIGKILL for *_, rc in attempts) == 3, context
  final = subprocess.run(main_cmd(tmp_path / "run"), cwd=ROOT, env=env(), capture_output=True,
                         text=True, timeout=900)
  assert final.returncode == 0, (context, final.stderr[-3000:])
  assert "Traceback" not in final.stderr, context
  assert_same_runs(runs(tmp_path / "run"), runs(tmp_path / "ref"), context)
