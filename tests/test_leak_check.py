"""The leak check flags a format that gives the label away, and passes a fair one."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from w2s_jax import config as config_lib
from w2s_jax.data import leak_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def write(path, rows):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return str(path)


def rows(n, leak=None, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    y = int(rng.random() < 0.5)
    words = list(rng.choice(WORDS, 8))
    if leak == "word" and y:
      words.append("correct")  # an answer marker shown only for positives
    if leak == "length" and y:
      words += list(rng.choice(WORDS, 8))
    out.append({"text": " ".join(words), "label": y})
  return out


def cfg(path):
  c = config_lib.defaults().task
  c.name, c.train_file = "jsonl", path
  return c


@pytest.mark.slow
def test_flags_a_marker_word_and_a_length_difference(tmp_path):
  r = leak_check.check(cfg(write(tmp_path / "w.jsonl", rows(600, "word"))))
  assert r["leak"] and "bag-of-words" in r["reason"] and r["bag_of_words_acc"] > 0.95
  r = leak_check.check(cfg(write(tmp_path / "l.jsonl", rows(600, "length"))))
  assert r["leak"] and "length baseline" in r["reason"]


@pytest.mark.slow
def test_a_fair_task_passes_and_the_command_reports(tmp_path):
  r = leak_check.check(cfg(write(tmp_path / "f.jsonl", rows(600))))
  assert not r["leak"] and r["bag_of_words_acc"] < 0.7 and r["length_acc"] < 0.7
  bad = write(tmp_path / "b.jsonl", rows(400, "word"))
  proc = subprocess.run([sys.executable, "-m", "w2s_jax.data.leak_check",
                         "--config=configs/nlp.py:jsonl", f"--config.task.train_file={bad}"],
                        cwd=ROOT, capture_output=True, text=True, env=dict(
                            os.environ, PYTHONPATH=ROOT, XLA_FLAGS=""))
  assert proc.returncode == 1 and "LEAK: bag-of-words baseline" in proc.stdout, proc.stderr[-2000:]
