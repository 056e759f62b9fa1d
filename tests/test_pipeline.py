"""The pipeline's data plumbing: which rows each stage trains on and which weak labels it reads."""
import json

import numpy as np
import pytest

from w2s_jax import config as config_lib, metrics, pipeline


def _spec(tmp_path, kind, key):
  return json.loads((tmp_path / "stages" / f"{kind}-{key}" / "spec.json").read_text())


@pytest.mark.parametrize("mode", ["full", "probe"])
def test_strong_models_train_on_the_first_n_strong_train_rows(tmp_path, nlp_config, mode):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 640, 128, 2.0
  cfg.task.n_strong_train = 64
  cfg.strong.mode = mode
  cfg.seeds = (0, 1) if mode == "probe" else (0,)
  config_lib.validate(cfg, 8)
  rows = pipeline.run(cfg, str(tmp_path))
  row = rows[0]
  exp = pipeline.Experiment(cfg, str(tmp_path))
  a, b = exp.splits.a, exp.splits.b
  assert (len(a), len(exp.dataset("a_strong")), len(exp.dataset("b_strong"))) == (320, 64, 64)
  np.testing.assert_array_equal(exp.dataset("b_strong").tokens, b.tokens[:64])
  keys = row["stage_keys"]
  # The weak supervisor trains on all of A and labels all of B; the ceiling on A's first 64.
  weak, ceiling = _spec(tmp_path, "gt", keys["weak"]), _spec(tmp_path, "gt", keys["ceiling"])
  assert weak["data"]["train"] == a.key() and b.key() in weak["data"]["eval"]
  assert ceiling["data"]["train"] == exp.dataset("a_strong").key() != a.key()
  assert exp.store.arrays("gt", keys["weak"])["b"].shape == (320, 2)
  student = _spec(tmp_path, "student", keys["student"])
  assert student["data"]["train"] == exp.dataset("b_strong").key()
  if mode == "full":  # 2 epochs of 64 rows at batch 32; the weak model: 2 epochs of 320
    assert exp.store.metrics("gt", keys["weak"])["steps"] == 20
    assert exp.store.metrics("gt", keys["ceiling"])["steps"] == 4
    assert exp.store.metrics("student", keys["student"])["steps"] == 4
  else:  # two seeds: results.json pools them
    pooled = json.loads((tmp_path / "results.json").read_text())["pooled"]
    assert [(p["loss"], p["seeds"]) for p in pooled] == [(loss, 2) for loss in cfg.losses]
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
  exp = pipeline.Experiment(cfg, str(tmp_path))
  assert exp.data_keys["a_strong"] == exp.data_keys["a"]
  assert exp.data_keys["b_strong"] == exp.data_keys["b"]


def test_eval_max_len_applies_to_the_extra_evaluation_sets_only(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test = 200, 50
  cfg.eval_tasks = ("synthetic",)
  full = pipeline.Experiment(cfg, str(tmp_path / "a"))
  cfg.eval_max_len = 16
  short = pipeline.Experiment(cfg, str(tmp_path / "b"))
  assert short.data_keys["a"] == full.data_keys["a"]  # training rows keep max_len (32)
  lengths = short.evals["eval:synthetic"].lengths
  assert lengths.max() <= 16 < full.evals["eval:synthetic"].lengths.max()
  assert 0 < len(lengths) < len(full.evals["eval:synthetic"])
