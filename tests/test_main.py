"""`python -m w2s_jax.main` end to end, as a researcher runs it (8 fake CPU devices)."""
import json
import os

import pytest
from tests.conftest import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("weak_acc", "ceiling_acc", "student_acc", "pgr", "weak_auroc", "ceiling_auroc",
          "student_auroc", "agreement", "n_test", "stage_keys", "pgr_ci95")


def main(*args, check=True):
  return run_main(*args, check=check)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("tiny")
  proc = main("--config=configs/nlp.py:tiny", f"--workdir={workdir}")
  return workdir, proc


@pytest.mark.slow
def test_tiny_end_to_end_results(tiny_run):
  workdir, proc = tiny_run
  with open(workdir / "results.json") as f:
    runs = json.load(f)["runs"]
  assert sorted((r["loss"], r["seed"]) for r in runs) == [("logconf", 0), ("xent", 0)]
  for r in runs:
    assert all(r[k] is not None for k in FIELDS), r
    assert r["weak"] == "tiny-1" and r["strong"] == "tiny-llama-2" and r["n_test"] == 1000
    assert r["weak_acc"] < r["ceiling_acc"], r
    assert r["pgr"] == pytest.approx((r["student_acc"] - r["weak_acc"]) /
                                     (r["ceiling_acc"] - r["weak_acc"]))
    assert 0.5 < r["weak_auroc"] <= 1 and 0 <= r["agreement"] <= 1
  # Both students share the weak labels and the ceiling.
  assert runs[0]["stage_keys"]["weak"] == runs[1]["stage_keys"]["weak"]
  assert runs[0]["stage_keys"]["ceiling"] == runs[1]["stage_keys"]["ceiling"]
  assert "median PGR [xent]" in proc.stdout
  # Training metrics are logged as JSON lines, with progress on the console.
  lines = [json.loads(x) for x in open(workdir / "metrics.jsonl")]
  assert {"loss", "accuracy", "lr", "examples_per_s", "step", "stage"} <= set(lines[0])
  assert "step 1/" in proc.stderr


@pytest.mark.slow
def test_rerun_skips_finished_stages_and_a_new_loss_reuses_weak_and_ceiling(tiny_run):
  workdir, _ = tiny_run
  before = {d: os.stat(workdir / "stages" / d).st_mtime for d in os.listdir(workdir / "stages")}
  # weak, ceiling and 2 students trained; the weak labels and 4 test predictions
  assert sorted(d.split("-")[0] for d in before) == ["predict"] * 5 + ["train"] * 4
  proc = main("--config=configs/nlp.py:tiny", f"--workdir={workdir}",
              "--config.losses=('xent', 'kl')")
  new = set(os.listdir(workdir / "stages")) - set(before)
  assert sorted(d.split("-")[0] for d in new) == ["predict", "train"], new
  assert proc.stderr.count("] cached (") == 7
  assert "[student:tiny-llama-2:b_student:kl:s0] done" in proc.stderr
  for d, mtime in before.items():
    assert os.stat(workdir / "stages" / d).st_mtime == mtime
  runs = json.load(open(workdir / "results.json"))["runs"]
  assert sorted(r["loss"] for r in runs) == ["kl", "logconf", "xent"]
  # --plan shows the graph and runs nothing.
  proc = main("--config=configs/nlp.py:tiny", f"--workdir={workdir}",
              "--config.losses=('xent', 'entropy')", "--plan")
  assert "1 predict, 1 train" in proc.stdout and "to run" in proc.stdout
  assert set(os.listdir(workdir / "stages")) == set(before) | new


@pytest.mark.slow
def test_bad_config_key_is_a_clear_error(tmp_path):
  proc = main("--config=configs/nlp.py:tiny", f"--workdir={tmp_path}", "--config.trian.lr=1",
              check=False)
  assert proc.returncode != 0
  assert "config error" in proc.stderr and "trian" in proc.stderr
  assert "Traceback" not in proc.stderr
  proc = main("--config=configs/nlp.py:tiny", f"--workdir={tmp_path}",
              "--config.train.batch_size=36", check=False)
  assert proc.returncode != 0 and "'train.batch_size'" in proc.stderr
  assert not os.path.exists(tmp_path / "stages")  # nothing started


@pytest.mark.slow
def test_malformed_jsonl_row_is_a_clear_error(tmp_path):
  path = tmp_path / "train.jsonl"
  path.write_text('{"text": "ok", "label": 0}\n{"text": "broken", "label": }\n')
  proc = main("--config=configs/nlp.py:jsonl", f"--workdir={tmp_path / 'w'}",
              f"--config.task.train_file={path}", check=False)
  assert proc.returncode != 0
  assert f"{path}:2: not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
