"""LoRA: only adapters and the head train; the base is untouched; the merged model is saved."""
import jax
import numpy as np
import pytest

from w2s_jax import experiment, loop, lora as lora_lib, sharding, train
from w2s_jax.data import dataset as data_lib
from w2s_jax.models import model_config


@pytest.mark.slow
def test_lora_trains_adapters_and_head_only(small_task):
  cfg, splits = small_task
  tcfg = cfg.train.copy_and_resolve_references()
  tcfg.epochs = 3.0
  mesh = sharding.make_mesh(1, 8, 1)
  lora = (4, 8.0, ("wq", "wv", "wo", "w_in"))
  tr = train.Trainer(model_config("tiny-llama-2", 259), 2, mesh, sharding.DEFAULT_RULES,
                     lora=lora)
  base = jax.tree.map(np.asarray, tr.init_params(0))
  tx, schedule = train.make_optimizer(tcfg, 1e-2, 10)
  _, init_fn, _ = tr.make_train_step(tx, schedule, train.losses.get("xent"), {}, 10)
  state = init_fn(tr.init_params(0))
  assert set(state["params"]) == {"lora", "cls_head"}
  opt_bytes = sum(x.nbytes for x in jax.tree.leaves(state["opt_state"]))
  base_bytes = sum(x.nbytes for x in jax.tree.leaves(base))
  assert opt_bytes < 0.5 * base_bytes  # Adam moments of adapters and head only
  # Training moves the adapted weights and the head, and nothing else.
  targets = data_lib.one_hot(splits.a.labels, 2)
  result = loop.fit(tr, tr.init_params(0), splits.a, targets, objective="soft", loss_name="xent", loss_hp={},
                     tcfg=tcfg, lr=1e-2, seed=0)
  changed = jax.tree.map(lambda a, b: bool(np.abs(np.asarray(a) - b).max() > 0), result.params,
                         base)
  assert changed["blocks"]["wq"] and changed["blocks"]["w_in"] and changed["cls_head"]
  assert not changed["blocks"]["wk"] and not changed["embed"] and not changed["blocks"]["w_out"]
  assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_merge_starts_at_the_base_and_matches_the_low_rank_product():
  blocks = {"wq": np.zeros((2, 8, 2, 4), np.float32), "wo": np.ones((2, 2, 4, 8), np.float32)}
  adapters = lora_lib.init(blocks, 3, ("wq", "wo"), jax.random.key(0))
  merged = lora_lib.merge({"blocks": blocks}, adapters, 3, 6.0)
  np.testing.assert_array_equal(merged["blocks"]["wo"], blocks["wo"])  # B = 0 at init
  adapters["wq"]["b"] = adapters["wq"]["b"] + 1.0
  merged = lora_lib.merge({"blocks": blocks}, adapters, 3, 6.0)
  expected = 2.0 * np.einsum("lir,lro->lio", adapters["wq"]["a"], adapters["wq"]["b"])
  np.testing.assert_allclose(merged["blocks"]["wq"], expected.reshape(2, 8, 2, 4), rtol=1e-6)


@pytest.mark.slow
def test_pipeline_with_a_lora_strong_model(tmp_path, nlp_config):
  import json  # noqa: PLC0415

  from w2s_jax import config as config_lib  # noqa: PLC0415
  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs, cfg.losses = 640, 256, 1.0, ("xent",)
  cfg.strong.lora_rank = 4
  config_lib.validate(cfg, 8)
  rows = experiment.run(cfg, str(tmp_path))
  key = rows[0]["stage_keys"]["student"]
  spec = json.loads((tmp_path / "stages" / f"train-{key}" / "spec.json").read_text())
  assert spec["model"]["lora"] == [4, 16.0, ["wq", "wv"]]
  cfg.strong.mode = "probe"
  import pytest  # noqa: PLC0415
  with pytest.raises(config_lib.ConfigError, match="'strong.lora_rank'.*exclude"):
    config_lib.validate(cfg, 8)
  cfg.strong.mode, cfg.strong.lora_targets = "full", ("wz",)
  with pytest.raises(config_lib.ConfigError, match="'strong.lora_targets'"):
    config_lib.validate(cfg, 8)


def test_targets_of_every_family():
  """Llama 3, Qwen3 and Gemma 2/3 adapt the same weight names (w_gate: SwiGLU's and GeGLU's
  gate); a weight a model lacks is named."""
  import pytest  # noqa: PLC0415
  from flax import nnx  # noqa: PLC0415

  from w2s_jax.models import Transformer  # noqa: PLC0415
  for size in ("llama-3.2-1b", "qwen3-0.6b", "gemma-2-2b", "gemma-3-1b", "gpt2"):
    cfg = model_config(size)
    blocks = nnx.to_pure_dict(nnx.state(nnx.eval_shape(
        lambda cfg=cfg: Transformer(cfg, 2, rngs=nnx.Rngs(0)))))["blocks"]
    targets = [t for t in lora_lib.IN_DIMS if t != "w_gate" or cfg.mlp != "gelu"]
    adapters = jax.eval_shape(lambda blocks=blocks, targets=targets: lora_lib.init(
        blocks, 2, targets, jax.random.key(0)))
    for name, ab in adapters.items():  # A [layers, d_in, 2] B [layers, 2, d_out] cover W
      assert ab["a"].shape[0] == ab["b"].shape[0] == cfg.n_layers
      assert ab["a"].shape[1] * ab["b"].shape[2] == np.prod(blocks[name].shape[1:])
  with pytest.raises(ValueError, match=r"LoRA targets \['w_gate'\]: this model has no such"):
    lora_lib.init(blocks, 2, ("wq", "w_gate"), jax.random.key(0))
