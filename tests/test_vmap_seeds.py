"""Seeds in one program: probes that differ only by seed, rows and targets train as one vmapped
program with the results of separate runs; the graph runs such stages together."""
import json
import os

import jax
import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, loop, metrics


def _probe(seed, n=256, d=6, evaluation=None):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = (x[:, 0] + 0.5 * x[:, seed % d] > 0).astype(int)
  return loop.Probe(x, np.eye(2, dtype=np.float32)[y], seed, evaluation=evaluation)


def _select(x, truth):
  """An evaluation that keeps the best step by accuracy on held-out rows."""
  return loop.Evaluation(lambda p: {"acc": metrics.accuracy(
      metrics.softmax(loop.probe_logits(p, x)), truth)}, 8, "acc", "max")


@pytest.fixture
def always_batch(monkeypatch):
  """Batch probes however few their steps (the rule runs short ones one by one)."""
  monkeypatch.setattr(loop, "MIN_BATCHED_STEPS", 0)


@pytest.mark.slow
def test_probes_of_several_seeds_in_one_program_equal_separate_runs(always_batch, monkeypatch):
  cfg = config_lib.defaults()
  cfg.train.update(epochs=3.0, batch_size=32)
  held = _probe(99, n=64)
  probes = [_probe(s, evaluation=_select(held.features, held.targets.argmax(-1)))
            for s in range(3)]
  probes.append(_probe(3, n=200, evaluation=probes[0].evaluation))  # another shape: its own
  fit = dict(loss_name="logconf", loss_hp=cfg.loss.logconf.to_dict(), tcfg=cfg.train, lr=1e-2)
  together = loop.fit_probes(probes, **fit)
  for p, r in zip(probes, together):
    alone = loop.fit_probe(p.features, p.targets, seed=p.seed, evaluation=p.evaluation, **fit)
    np.testing.assert_allclose(r.params["cls_head"], alone.params["cls_head"], atol=1e-6)
    assert r.best_step == alone.best_step and r.steps == alone.steps
    assert [h["loss"] for h in r.history] == pytest.approx([h["loss"] for h in alone.history],
                                                           abs=1e-6)
    assert [e["acc"] for e in r.evals] == [e["acc"] for e in alone.evals]
  assert len({r.best_step for r in together}) > 1 or together[0].best_step > 0
  vmapped = []
  monkeypatch.setattr(loop, "_vmapped", lambda run: vmapped.append(run) or jax.vmap(run))
  loop.fit_probes(probes[:3], **fit)
  assert len(vmapped) == 1  # one program for the three
  monkeypatch.setattr(loop, "MIN_BATCHED_STEPS", 10 ** 6)
  loop.fit_probes(probes[:3], **fit)
  assert len(vmapped) == 1  # too few steps to pay for a compile: one by one


@pytest.mark.slow
def test_the_graph_trains_every_seed_s_probe_as_one_program(tmp_path, nlp_config, caplog,
                                                            always_batch):
  """A probed pair over 3 seeds: batched and one by one give the same stages, bit for bit
  here, and the same rows."""
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 320, 64, 2.0
  cfg.strong.mode, cfg.strong.lr, cfg.seeds = "probe", 1e-2, (0, 1, 2)
  config_lib.validate(cfg, 8)
  with caplog.at_level("INFO", logger="w2s_jax"):
    together = experiment.run(cfg, str(tmp_path / "batched"))
  # The ceilings, and the students of each loss: the weak model is fine-tuned, one by one.
  assert sum("x3] running as one program" in r.getMessage() for r in caplog.records) == 1 + len(
      cfg.losses)
  cfg.train.batch_seeds = False
  alone = experiment.run(cfg, str(tmp_path / "alone"))
  assert [r["stage_keys"] for r in together] == [r["stage_keys"] for r in alone]
  assert [r["pgr"] for r in together] == pytest.approx([r["pgr"] for r in alone], abs=1e-6)
  for r in together:
    key = r["stage_keys"]["student"]
    heads = [np.load(tmp_path / w / "stages" / f"train-{key}" / "arrays.npz")["cls_head"]
             for w in ("batched", "alone")]
    np.testing.assert_allclose(*heads, atol=1e-6)
    spec = json.loads((tmp_path / "batched" / "stages" / f"train-{key}" / "spec.json").read_text())
    assert "batch_seeds" not in json.dumps(spec) and os.path.exists(
        tmp_path / "batched" / "stages" / f"train-{key}" / "COMMIT")


def test_a_chunk_of_steps_records_as_its_steps_one_by_one():
  """Recorder.record_chunk (a probe's scanned steps in bulk) keeps the same log steps and values
  as record per step, and names the first non-finite step after logging the steps before it."""
  tcfg = config_lib.defaults().train
  tcfg.log_every = 4
  rng = np.random.default_rng(0)
  steps = {"loss": rng.uniform(size=100).astype(np.float32),
           "grad_norm": rng.uniform(size=100).astype(np.float32)}
  one, bulk = loop.Recorder(tcfg, 100, "a"), loop.Recorder(tcfg, 100, "a")
  for i in range(100):
    one.record((i, {k: v[i] for k, v in steps.items()}))
  for first, end in ((0, 3), (3, 10), (10, 100)):
    bulk.record_chunk(first, {k: v[first:end] for k, v in steps.items()})
  strip = lambda h: [{k: v for k, v in e.items() if k != "examples_per_s"} for e in h]  # noqa: E731
  assert strip(bulk.history) == strip(one.history)
  assert [e["step"] for e in bulk.history] == list(range(0, 100, 4)) + [99]
  steps["loss"][13] = np.nan
  bad = loop.Recorder(tcfg, 100, "a")
  with pytest.raises(loop.NonFiniteLoss, match="at step 13"):
    bad.record_chunk(0, steps)
  assert [e["step"] for e in bad.history] == [0, 4, 8, 12]
