"""The pipeline's data plumbing: which rows each stage trains on and which weak labels it reads."""
import json

import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, metrics, replicates, runtime, stages


def _spec(tmp_path, kind, key):
  return json.loads((tmp_path / "stages" / f"{kind}-{key}" / "spec.json").read_text())


def _data(cfg, tmp_path):
  return replicates.data_for(cfg, runtime.Runtime(cfg, str(tmp_path)))


@pytest.mark.parametrize("mode", ["full", "probe"])
@pytest.mark.slow
def test_strong_models_train_on_the_first_n_strong_train_rows(tmp_path, nlp_config, mode):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 640, 128, 2.0
  cfg.task.n_strong_train = 64
  cfg.strong.mode = mode
  cfg.seeds = (0, 1) if mode == "probe" else (0,)
  config_lib.validate(cfg, 8)
  rows = experiment.run(cfg, str(tmp_path))
  row = rows[0]
  data = _data(cfg, tmp_path)
  sets = data.sets(row["seed"])
  a, b = sets["a"], sets["b"]
  # 640 synthetic rows less the repeats dropped, halved
  assert len(a) == len(data.pool) // 2 > 300 and (len(sets["a_strong"]), len(sets["b_strong"])) == (64, 64)
  np.testing.assert_array_equal(sets["b_strong"].tokens, b.tokens[:64])
  keys = row["stage_keys"]
  # The weak supervisor trains on all of A and labels all of B; the ceiling on A's first 64.
  weak, ceiling = _spec(tmp_path, "train", keys["weak"]), _spec(tmp_path, "train", keys["ceiling"])
  assert weak["data"] == a.key() and ceiling["data"] == sets["a_strong"].key() != a.key()
  student = _spec(tmp_path, "train", keys["student"])
  assert student["data"] == sets["b_strong"].key()
  labels = _spec(tmp_path, "predict", student["labels"])
  assert labels["train"] == keys["weak"] and labels["data"] == b.key()
  store = stages.StageStore(str(tmp_path))
  assert store.arrays("predict", student["labels"])["probs"].shape == (len(b), 2)
  if mode == "full":  # 2 epochs of 64 rows at batch 32; the weak model: 2 epochs of A
    assert store.metrics("train", keys["weak"])["steps"] == 2 * (len(a) // 32)
    assert store.metrics("train", keys["ceiling"])["steps"] == 4
    assert store.metrics("train", keys["student"])["steps"] == 4
  else:  # two seeds: results.json pools them
    pooled = json.loads((tmp_path / "results.json").read_text())["pooled"]
    assert sorted((p["loss"], p["seeds"]) for p in pooled) == sorted(
        (loss, 2) for loss in cfg.losses)
    for p in pooled:
      for name in ("weak_acc", "student_acc", "ceiling_acc"):
        assert p[name] == pytest.approx(np.mean([r[name] for r in rows if r["loss"] == p["loss"]]))


def test_pooled_pgr_is_the_pgr_of_mean_accuracies():
  rng = np.random.default_rng(0)
  runs = [[rng.random(200) < p for p in (0.6, 0.7 + 0.05 * s, 0.9)] for s in range(3)]
  out = metrics.pooled_pgr(runs, samples=500)
  w, st, c = (np.mean([r[i] for r in runs]) for i in range(3))
  assert out["seeds"] == 3 and out["pgr"] == pytest.approx((st - w) / (c - w))
  lo, hi = out["pgr_ci95"]
  assert lo < out["pgr"] < hi and hi - lo < 1


def test_n_strong_train_zero_means_all_rows(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test = 200, 50
  keys = _data(cfg, tmp_path).keys(0)
  assert keys["a_strong"] == keys["a"] and keys["b_strong"] == keys["b"]


def test_eval_max_len_applies_to_the_extra_evaluation_sets_only(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test = 200, 50
  cfg.eval_tasks = ("synthetic",)
  full = _data(cfg, tmp_path / "a")
  cfg.eval_max_len = 16
  short = _data(cfg, tmp_path / "b")
  assert short.keys(0)["a"] == full.keys(0)["a"]  # training rows keep max_len (32)
  lengths = short.shared["eval:synthetic"].lengths
  assert lengths.max() <= 16 < full.shared["eval:synthetic"].lengths.max()
  assert 0 < len(lengths) < len(full.shared["eval:synthetic"])
