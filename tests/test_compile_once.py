"""Compile once, feed fast: stages of one model share their train program; the epoch order is
computed once; tokenization in batches gives the same ids; profiled steps leave a trace."""
import numpy as np
import pytest

from w2s_jax import loop, sharding, train
from w2s_jax.data import dataset as data_lib
from w2s_jax.data.tokenizers import ByteTokenizer, get_tokenizer
from w2s_jax.models import model_config
from tests.conftest import fit_tiny


def _fit(tr, splits, tcfg, targets, lr=1e-3, **kw):
  return fit_tiny(splits, tcfg, tr, targets=targets, lr=lr, steps=3, **kw)


@pytest.mark.slow
def test_a_second_stage_of_the_same_model_compiles_no_new_train_program(small_task, tmp_path):
  cfg, splits = small_task
  cfg = cfg.copy_and_resolve_references()
  cfg.train.buckets = (32,)  # one shape whatever rows a step draws
  tr = train.Trainer(model_config("tiny-1", 259), 2, sharding.make_mesh(1, 8, 1),
                     sharding.DEFAULT_RULES)
  ceiling = data_lib.one_hot(splits.a.labels, 2)
  _fit(tr, splits, cfg.train, ceiling)
  traced = tr.traces["train"]
  student = _fit(tr, splits, cfg.train, ceiling * 0.8 + 0.1)  # other targets: soft labels
  assert tr.traces["train"] == traced and student.speed["first_step_seconds"] < 5
  # Another learning rate and another length: run-time values of the same program.
  other = loop.fit(tr, tr.init_params(0), splits.a, ceiling, objective="soft", loss_name="xent",
                   loss_hp={}, tcfg=cfg.train, lr=3e-3, seed=0, steps=5)
  assert tr.traces["train"] == traced and [h["step"] for h in other.history][-1] == 4
  assert other.history[0]["lr"] == pytest.approx(3e-3) and other.history[-1]["lr"] < 2e-3
  _fit(tr, splits, cfg.train, ceiling, loss_name="logconf", loss_hp={})  # another loss
  assert tr.traces["train"] > traced
  profiled = _fit(tr, splits, train.with_overrides(cfg.train, profile_steps=(1, 2)), ceiling,
                  profile_dir=str(tmp_path / "profile"))
  assert profiled.steps == 3 and list((tmp_path / "profile").rglob("*.xplane.pb"))


def test_the_epoch_order_is_one_permutation_per_seed_and_epoch():
  steps = [data_lib.batch_indices(100, s, 10, seed=3) for s in range(20)]
  assert sorted(np.concatenate(steps[:10]).tolist()) == list(range(100))
  assert not np.array_equal(np.concatenate(steps[:10]), np.concatenate(steps[10:]))
  np.testing.assert_array_equal(data_lib.batch_indices(100, 13, 10, seed=3), steps[13])


@pytest.mark.slow
@pytest.mark.asset
def test_batched_tokenization_gives_the_same_ids():
  texts = ["The capital of France is", "", "naïve café — ünïcode", "a" * 300]
  for tok in (ByteTokenizer(), get_tokenizer("gguf:smollm2-135m")):
    batched = tok.encode_batch(texts)
    for text, ids in zip(texts, batched):
      np.testing.assert_array_equal(ids, tok.encode(text))
