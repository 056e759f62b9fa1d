"""Linear probes: the body's features are computed once per model and shared by every probe."""
import json
import os

import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, loop, metrics

@pytest.mark.slow
def test_probe_students_share_one_forward_pass(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 640, 256, 2.0
  cfg.losses = ("xent", "logconf")
  cfg.strong.mode, cfg.strong.lr = "probe", 1e-2
  config_lib.validate(cfg, 8)
  rows = experiment.run(cfg, str(tmp_path))
  stage_dirs = sorted(os.listdir(tmp_path / "stages"))
  features = {d.split("-", 1)[1] for d in stage_dirs if d.startswith("features")}
  assert len(features) == 2  # the strong body's forward pass over the pool (A and B) and test
  spec = lambda kind, key: json.loads(  # noqa: E731
      (tmp_path / "stages" / f"{kind}-{key}" / "spec.json").read_text())
  ceiling = spec("train", rows[0]["stage_keys"]["ceiling"])
  students = [spec("train", r["stage_keys"]["student"]) for r in rows]
  assert ceiling["features"] in features and ceiling["model"]["mode"] == "probe"
  assert {s["features"] for s in students} <= features and len(students) == 2
  # A new probe loss adds its train and test predict stages, and no forward pass.
  cfg.losses = ("xent", "logconf", "entropy")
  experiment.run(cfg, str(tmp_path))
  added = set(os.listdir(tmp_path / "stages")) - set(stage_dirs)
  assert sorted(d.split("-")[0] for d in added) == ["predict", "train"]


def test_fit_probe_learns_a_linear_rule():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(512, 8)).astype(np.float32)
  y = (x[:, 0] - x[:, 3] > 0).astype(int)
  cfg = config_lib.defaults()
  cfg.train.epochs = 20.0
  result = loop.fit_probe(x, np.eye(2, dtype=np.float32)[y], loss_name="xent", loss_hp={},
                           tcfg=cfg.train, lr=0.05, seed=0)
  probs = metrics.softmax(loop.probe_logits(result.params, x))
  assert (probs.argmax(1) == y).mean() > 0.95
  assert result.params["cls_head"].shape == (8, 2)
