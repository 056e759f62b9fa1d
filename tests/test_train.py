"""The compiled train step: sharded == single device, real sharding, one compile per bucket,
gradient accumulation over the whole optimizer batch, determinism."""
import jax
import numpy as np
import pytest

from w2s_jax import config as config_lib, loop, sharding, train
from w2s_jax.data import dataset as data_lib
from w2s_jax.models import model_config


@pytest.fixture(scope="module")
def setup(small_task):
  return small_task


def run_fit(cfg, splits, mesh, *, size="tiny-2", loss="xent", steps=5, seed=0, trainer=None):
  tcfg = cfg.train.copy_and_resolve_references()
  tcfg.epochs = steps / data_lib.steps_per_epoch(len(splits.a), tcfg.batch_size)
  tr = trainer or train.Trainer(model_config(size, 259), 2, mesh, sharding.DEFAULT_RULES)
  targets = data_lib.one_hot(splits.a.labels, 2) * 0.8 + 0.1  # soft targets
  result = loop.fit(tr, tr.init_params(seed), splits.a, targets, objective="soft", loss_name=loss,
                     loss_hp=cfg.loss[loss].to_dict() if loss in cfg.loss else {},
                     tcfg=tcfg, lr=tcfg.lr, seed=seed)
  return tr, result


@pytest.mark.slow
def test_sharded_and_single_device_steps_agree(setup):
  cfg, splits = setup
  single = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  sharded = sharding.make_mesh(2, 4, 1)
  for size in ("tiny-2", "tiny-llama-2"):
    _, a = run_fit(cfg, splits, single, size=size)
    tr, b = run_fit(cfg, splits, sharded, size=size)
    assert len(a.history) == len(b.history) == 5
    np.testing.assert_allclose([h["loss"] for h in a.history], [h["loss"] for h in b.history],
                               atol=1e-5)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5)


def test_parameters_are_really_sharded(setup):
  cfg, splits = setup
  mesh = sharding.make_mesh(2, 4, 1)
  tr, result = run_fit(cfg, splits, mesh, steps=1)
  w_in = result.params["blocks"]["w_in"]  # [layers, embed, mlp]: embed over fsdp (4)
  assert w_in.sharding.spec == jax.P(None, "fsdp", "tensor")
  for shard in w_in.addressable_shards:
    assert shard.data.shape == (w_in.shape[0], w_in.shape[1] // 4, w_in.shape[2])
    assert shard.data.nbytes * 4 == w_in.nbytes
  # The whole model: each device holds about 1/4 (fsdp) of the parameters, not all of them.
  total = sum(x.nbytes for x in jax.tree.leaves(result.params))
  per_device = sharding.per_device_bytes(result.params)
  assert len(per_device) == 8 and max(per_device) < 0.3 * total


@pytest.mark.slow
def test_train_step_compiles_once_per_bucket(setup):
  cfg, splits = setup
  mesh = sharding.make_mesh(2, 4, 1)
  tr = train.Trainer(model_config("tiny-1", 259), 2, mesh, sharding.DEFAULT_RULES)
  steps = 3 * data_lib.steps_per_epoch(len(splits.a), cfg.train.batch_size)  # 3 epochs
  run_fit(cfg, splits, mesh, steps=steps, trainer=tr)
  dummy = np.zeros((len(splits.a), 2), np.float32)
  used = {data_lib.train_batch(splits.a, dummy, s, batch_size=32, accum=1, seed=0,
                               buckets=(16, 32))["tokens"].shape[-1] for s in range(steps)}
  assert used == {16, 32}, "the test data should exercise both buckets"
  assert tr.traces["train"] == len(used)
  tr.predict(tr.init_params(0), splits.test, 64, (16, 32))
  tr.predict(tr.init_params(0), splits.test, 64, (16, 32))
  assert tr.traces["predict"] <= 2


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["logconf", "window", "xent"])
def test_gradient_accumulation_keeps_the_loss_over_the_whole_batch(setup, loss):
  cfg, splits = setup
  mesh = sharding.make_mesh(1, -1, 1)
  _, full = run_fit(cfg, splits, mesh, loss=loss, steps=3)
  cfg2 = cfg.copy_and_resolve_references()
  cfg2.train.micro_batch_size = 8  # 4 micro-batches of 8 (each split over the 8 devices)
  _, acc = run_fit(cfg2, splits, mesh, loss=loss, steps=3)
  np.testing.assert_allclose([h["loss"] for h in full.history],
                             [h["loss"] for h in acc.history], atol=2e-6)
  for x, y in zip(jax.tree.leaves(full.params), jax.tree.leaves(acc.params)):
    # Adam divides by sqrt(v): a near-zero gradient's rounding noise shows up at ~1e-6.
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5)


@pytest.mark.slow
def test_deterministic_for_a_seed_and_bf16_trains(setup):
  cfg, splits = setup
  mesh = sharding.make_mesh(1, -1, 1)
  _, a = run_fit(cfg, splits, mesh, steps=4)
  _, b = run_fit(cfg, splits, mesh, steps=4)
  _, c = run_fit(cfg, splits, mesh, steps=4, seed=1)
  assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
  assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]
  tr = train.Trainer(model_config("tiny-2", 259), 2, mesh, sharding.DEFAULT_RULES,
                     dtype="bfloat16")
  _, half = run_fit(cfg, splits, mesh, steps=4, trainer=tr)
  assert all(np.isfinite(h["loss"]) for h in half.history)
  assert half.params["embed"].dtype == np.float32


def test_optimizer_defaults_follow_the_reference():
  cfg = config_lib.defaults()
  tx, schedule = train.make_optimizer(cfg.train, 5e-5, 100)
  assert float(schedule(0)) == pytest.approx(5e-5)  # no warmup
  assert float(schedule(100)) == pytest.approx(0.0, abs=1e-12)  # cosine to 0
  assert train.learning_rate(cfg.train, model_config("gpt2-medium")) == 5e-5
  assert train.learning_rate(cfg.train, model_config("gpt2-large")) == 1e-5
