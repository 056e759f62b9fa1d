"""The knobs the science needs: schedules per role, logconf warmup in steps and alpha per student
size, early stopping on weak labels (resumable), evaluation curves."""
import json

import jax
import numpy as np
import pytest

from w2s_jax import checkpoint, config as config_lib, experiment, loop, replicates, report, \
    runtime, sharding, stages, tables, train
from w2s_jax.data import dataset as data_lib
from w2s_jax.models import model_config
from tests.conftest import fit_tiny


def test_warmup_steps_become_the_fraction_the_loss_reads():
  hp = loop.resolve_hp({"alpha_max": 0.5, "warmup_frac": 0.2, "warmup_steps": 30}, 120)
  assert hp == {"alpha_max": 0.5, "warmup_frac": 0.25}
  assert loop.resolve_hp({"warmup_frac": 0.2, "warmup_steps": 0}, 120) == {"warmup_frac": 0.2}
  assert loop.resolve_hp({"warmup_steps": 500}, 120)["warmup_frac"] == 1.0


def test_alpha_max_large_applies_above_large_model_params():
  cfg = config_lib.defaults()
  cfg.loss.logconf.update(alpha_max=0.5, alpha_max_large=0.75)
  cfg.train.large_model_params = 1000
  assert runtime.loss_hp(cfg, "logconf", 999)["alpha_max"] == 0.5
  assert runtime.loss_hp(cfg, "logconf", 1001)["alpha_max"] == 0.75
  assert "alpha_max_large" not in runtime.loss_hp(cfg, "logconf", 1001)
  cfg.loss.logconf.alpha_max_large = -1.0
  assert runtime.loss_hp(cfg, "logconf", 10**9)["alpha_max"] == 0.5


def _fit(small_task, evaluation, ckpt_dir="", stop_after=0):
  cfg, splits = small_task
  tcfg = train.with_overrides(cfg.train, checkpoint_every=0, log_every=100)
  return fit_tiny(splits, tcfg, steps=12, evaluation=evaluation, ckpt_dir=ckpt_dir,
                  stop_after=stop_after)


def _checksum(params) -> float:
  return float(sum(np.abs(np.asarray(x)).sum() for x in jax.tree.leaves(params)))


@pytest.mark.slow
def test_early_stopping_keeps_the_best_step_and_survives_a_resume(small_task, tmp_path):
  seen = {}

  def evaluate(params):  # a metric that peaks at step 6 (of evaluations at 3, 6, 9, 12)
    step = 3 * (len(seen) % 4 + 1)
    seen[len(seen)] = _checksum(params)
    return {"score": -abs(step - 6)}
  full = _fit(small_task, loop.Evaluation(evaluate, every=3, metric="score"))
  assert full.best_step == 6 and [e["step"] for e in full.evals] == [3, 6, 9, 12]
  assert _checksum(full.params) == pytest.approx(seen[1], rel=1e-6)
  # Killed (preempted) at step 8 and resumed: the same kept step and parameters.
  seen.clear()
  with pytest.raises(checkpoint.Preempted):
    _fit(small_task, loop.Evaluation(evaluate, every=3, metric="score"), str(tmp_path), 8)
  checkpoint.clear_preemption()
  seen[0], seen[1] = None, None  # evaluations 3 and 6 happened before the kill
  resumed = _fit(small_task, loop.Evaluation(evaluate, every=3, metric="score"), str(tmp_path))
  assert resumed.resumed_from == 8 and resumed.best_step == 6
  assert [e["step"] for e in resumed.evals] == [3, 6, 9, 12]
  np.testing.assert_allclose(_checksum(resumed.params), _checksum(full.params), rtol=1e-6)


@pytest.mark.slow
def test_every_role_is_selected_alike_on_its_own_held_out_rows(tmp_path, nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test = 640, 128
  cfg.losses, cfg.train.epochs = ("xent",), 1.0
  cfg.schedules.student.steps = 14
  cfg.early_stopping.update(enabled=True, every=7, val_rows=64)
  config_lib.validate(cfg, 8)
  (row,) = experiment.run(cfg, str(tmp_path))
  store = stages.StageStore(str(tmp_path))
  student = store.metrics("train", row["stage_keys"]["student"])
  ceiling = store.metrics("train", row["stage_keys"]["ceiling"])
  data = replicates.data_for(cfg, runtime.Runtime(cfg, str(tmp_path)))
  keys, sets = data.keys(0), data.sets(0)
  # One epoch of A's rows before its 64 held-out ones, at batch 32.
  n = (len(sets["a"]) - 64) // 32
  assert student["steps"] == 14 and ceiling["steps"] == n
  assert [e["step"] for e in student["evals"]] == [7, 14]
  assert [e["step"] for e in ceiling["evals"]] == sorted({*range(7, n + 1, 7), n})
  for role in ("weak", "ceiling", "student"):
    m = store.metrics("train", row["stage_keys"][role])
    assert row["selected_step"][role] == m["best_step"] in [e["step"] for e in m["evals"]]
  assert {"val_weak_auroc", "val_gt_acc", "test_gt_acc"} <= set(student["evals"][0])
  assert "val_gt_auroc" in ceiling["evals"][0] and "val_weak_auroc" not in ceiling["evals"][0]
  spec = lambda role: json.loads((tmp_path / "stages" / f"train-{row['stage_keys'][role]}" /  # noqa: E731
                                  "spec.json").read_text())
  # No model trains on its held-out rows: B's last 64 for the student, A's for the weak model
  # and the ceiling.
  assert spec("student")["data"] == keys["b_student"] and len(sets["b_student"]) == len(
      sets["b"]) - 64
  np.testing.assert_array_equal(sets["b_val"].tokens, sets["b"].tokens[-64:])
  np.testing.assert_array_equal(sets["a_val"].tokens, sets["a"].tokens[-64:])
  assert spec("weak")["data"] == spec("ceiling")["data"] == keys["a_train"]
  assert spec("weak")["early_stopping"]["val"] == keys["a_val"]
  assert row["oracle"] is False and "oracle" not in report.tables(
      json.loads((tmp_path / "results.json").read_text()))
  # Selected on ground truth instead: an analysis, marked in the table (and the figures' labels).
  cfg.early_stopping.oracle = True
  (oracle,) = experiment.run(cfg, str(tmp_path))
  assert oracle["oracle"] is True and oracle["stage_keys"]["weak"] == row["stage_keys"]["weak"]
  assert store.metrics("train", oracle["stage_keys"]["student"])["best_step"] in (7, 14)
  table = report.tables(json.loads((tmp_path / "results.json").read_text()))
  assert tables.method_label(oracle) == "xent (oracle-selected)" != tables.method_label(row)
  assert "xent (oracle-selected)" in table


def test_one_pass_gives_every_depths_features(small_task):
  """Layer k of `features_by_layer` is the feature of the model cut to its first k layers, so a
  depth ladder of probes on one checkpoint costs one forward pass."""
  import dataclasses  # noqa: PLC0415

  from w2s_jax import models  # noqa: PLC0415
  _, splits = small_task
  mesh, rules = sharding.make_mesh(1, 8, 1), sharding.DEFAULT_RULES
  mc = model_config("tiny-llama-2", 259)
  full = train.Trainer(mc, 2, mesh, rules)
  params = full.init_params(0)
  layers = full.predict(params, splits.test, 64, (16, 32), what="layers")
  assert layers.shape == (len(splits.test), mc.n_layers, mc.d_model)
  np.testing.assert_allclose(layers[:, -1], full.predict(params, splits.test, 64, (16, 32),
                                                         what="features"), atol=1e-5)
  cut = models.truncated(mc, 1)
  assert cut == dataclasses.replace(mc, n_layers=1)
  short = train.Trainer(cut, 2, mesh, rules)
  first = jax.tree.map(lambda x: x, params)
  first["blocks"] = jax.tree.map(lambda x: x[:1], params["blocks"])
  np.testing.assert_allclose(layers[:, 0], short.predict(short.put_params(first), splits.test, 64,
                                                          (16, 32), what="features"), atol=1e-5)


@pytest.mark.slow
def test_a_depth_ladder_of_probes_on_one_checkpoint_shares_its_features(tmp_path, nlp_config):
  from tests.test_hf import hf_model  # noqa: PLC0415
  hf_model("llama").save_pretrained(tmp_path / "ckpt")
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 320, 64, 1.0
  cfg.losses, cfg.features_all_layers = ("xent",), True
  for spec, k in ((cfg.weak, 1), (cfg.strong, 0)):
    spec.update(init=f"hf:{tmp_path / 'ckpt'}", size="auto", mode="probe", n_layers=k, lr=1e-2)
  config_lib.validate(cfg, 8)
  (row,) = experiment.run(cfg, str(tmp_path / "work"))
  kinds = [d.name.split("-")[0] for d in (tmp_path / "work" / "stages").iterdir()]
  assert kinds.count("features") == 2  # the pool (A and B) and test, once each for both depths
  assert row["weak"].endswith("@1L") and row["params"]["weak"] < row["params"]["strong"]


def test_generative_texts_can_be_the_pairs_shared_prefix():
  """For pairs built from a classification task, gft sees the text without its answer."""
  tokens = np.zeros((2, 8, 2), np.int32)
  tokens[0, :5, 0], tokens[0, :4, 1] = [5, 6, 7, 8, 9], [5, 6, 7, 3]
  tokens[1, :3, 0], tokens[1, :3, 1] = [4, 4, 4], [4, 4, 4]  # equal texts: the whole text
  ds = data_lib.Dataset(tokens, np.array([[5, 4], [3, 3]], np.int32), np.zeros(2, np.int32))
  prefix, lengths = data_lib.shared_prefix(ds)
  assert lengths.tolist() == [3, 3]
  np.testing.assert_array_equal(prefix[0], [5, 6, 7, 0, 0, 0, 0, 0])
  rows, targets = data_lib.text_rows(ds, prefix_only=True)
  assert len(rows) == 2 and targets[0].tolist()[:3] == [6, 7, -1]
  both, _ = data_lib.text_rows(ds)
  assert len(both) == 4
