"""Checkpoint import and export against transformers (PyTorch, CPU): logits agree in fp32."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from w2s_jax import experiment, sharding, train
from w2s_jax.errors import CheckpointError
from w2s_jax.models import hf as hf_lib, model_config

KINDS = ["gpt2", "llama", "qwen2", "mistral"]


def hf_model(kind):
  common = dict(vocab_size=300, max_position_embeddings=64, num_hidden_layers=2,
                hidden_size=64, intermediate_size=128, num_attention_heads=4)
  if kind == "gpt2":
    cfg = transformers.GPT2Config(vocab_size=300, n_positions=64, n_embd=64, n_layer=2,
                                  n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(cfg)
  elif kind == "llama":
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        **common, num_key_value_heads=2, rope_theta=500.0, tie_word_embeddings=False))
  elif kind == "mistral":  # a window of 3 on 16-token rows: the band mask is exercised
    model = transformers.MistralForCausalLM(transformers.MistralConfig(
        **common, num_key_value_heads=2, sliding_window=3, tie_word_embeddings=False))
  else:
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
        **common, num_key_value_heads=2, rope_theta=1e4, tie_word_embeddings=True))
  torch.manual_seed(0)
  with torch.no_grad():  # every weight random, norms included: a swapped tensor cannot hide
    for p in model.parameters():
      p.add_(torch.randn_like(p) * 0.1)
  return model.eval()


def batch():
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, 300, (3, 16)).astype(np.int32)
  lengths = np.array([16, 9, 4], np.int32)
  mask = (np.arange(16)[None] < lengths[:, None]).astype(np.int64)
  return tokens, lengths, mask


def hf_logits(model, tokens, mask):
  with torch.no_grad():
    return model(input_ids=torch.tensor(tokens, dtype=torch.long),
                 attention_mask=torch.tensor(mask)).logits.float().numpy()


def our_logits(tr, params, tokens):
  model = tr.merge(params)
  # fp32 parity: a GPU's default fp32 matmul is TF32 (logits off by up to 7.5e-3 on an H200).
  with jax.default_matmul_precision("highest"):
    return np.asarray(model.lm_logits(model.hidden(jnp.asarray(tokens))))


def assert_real_positions_close(a, b, mask, atol=1e-4):
  np.testing.assert_allclose(a[mask.astype(bool)], b[mask.astype(bool)], atol=atol, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_import_matches_transformers(kind, tmp_path):
  model = hf_model(kind)
  model.save_pretrained(tmp_path)
  mc = hf_lib.load_config(str(tmp_path))
  mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  tr = train.Trainer(mc, 2, mesh, sharding.DEFAULT_RULES)
  params = hf_lib.load_params(str(tmp_path), tr.abstract_params(), tr.param_shardings)
  tokens, _, mask = batch()
  assert_real_positions_close(our_logits(tr, params, tokens), hf_logits(model, tokens, mask),
                              mask)
  assert float(jnp.abs(params["cls_head"]).max()) == 0.0  # head zero-initialised


@pytest.mark.slow
def test_sharded_import_holds_one_shard_per_device(tmp_path):
  model = hf_model("llama")
  model.save_pretrained(tmp_path)
  mc = hf_lib.load_config(str(tmp_path))
  tr = train.Trainer(mc, 2, sharding.make_mesh(1, 8, 1), sharding.DEFAULT_RULES)
  params = hf_lib.load_params(str(tmp_path), tr.abstract_params(), tr.param_shardings)
  total = sum(x.nbytes for x in jax.tree.leaves(params))
  assert max(sharding.per_device_bytes(params)) < 1.2 * total / 8
  tokens, _, mask = batch()
  assert_real_positions_close(our_logits(tr, params, tokens), hf_logits(model, tokens, mask),
                              mask)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["tiny-2", "tiny-llama-2"])
def test_export_round_trip_through_transformers(size, tmp_path):
  mc = model_config(size, vocab_size=300)
  mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  tr = train.Trainer(mc, 2, mesh, sharding.DEFAULT_RULES)
  keys = iter(jax.random.split(jax.random.key(1), 100))
  params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(next(keys), x.shape),
                        tr.init_params(0))
  hf_lib.export(mc, params, str(tmp_path))
  model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
  tokens, _, mask = batch()
  assert_real_positions_close(hf_logits(model, tokens, mask), our_logits(tr, params, tokens),
                              mask)
  explicit = lambda c: dataclasses.replace(c, head_dim=c.dim_head, n_kv_heads=c.kv_heads)  # noqa: E731
  assert explicit(hf_lib.load_config(str(tmp_path))) == explicit(mc)


def test_unsupported_checkpoints_are_clear_errors(tmp_path):
  with pytest.raises(ValueError, match="model_type 'bert' is not supported"):
    hf_lib.model_config_from_hf({"model_type": "bert"})
  with pytest.raises(ValueError, match="rope scaling"):  # dynamic NTK depends on the length
    hf_lib.model_config_from_hf({"model_type": "llama", "rope_scaling": {"rope_type": "dynamic",
                                                                          "factor": 2.0},
                                 "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 4,
                                 "num_hidden_layers": 1, "intermediate_size": 8})
  with pytest.raises(FileNotFoundError, match="not a folder and not downloadable"):
    hf_lib.local_folder(str(tmp_path / "nothing-here"))


@pytest.mark.slow
def test_pipeline_fine_tunes_an_imported_checkpoint(tmp_path, nlp_config):
  """A transformers-saved checkpoint as the strong model (`init=hf:FOLDER`, `size=auto`)."""
  import json  # noqa: PLC0415

  from w2s_jax import config as config_lib  # noqa: PLC0415

  hf_model("llama").save_pretrained(tmp_path / "ckpt")
  cfg = nlp_config("tiny")
  cfg.strong.init, cfg.strong.size = f"hf:{tmp_path / 'ckpt'}", "auto"
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 640, 256, 1.0
  cfg.losses = ("xent",)
  config_lib.validate(cfg, jax.device_count())
  rows = experiment.run(cfg, str(tmp_path / "work"))
  ceiling = json.loads((tmp_path / "work" / "stages" / f"train-{rows[0]['stage_keys']['ceiling']}"
                        / "spec.json").read_text())
  assert ceiling["model"]["init"] == f"hf:{tmp_path / 'ckpt'}"
  assert ceiling["model"]["checkpoint"] == hf_lib.fingerprint(str(tmp_path / "ckpt"))
  assert ceiling["model"]["d_model"] == 64 and ceiling["model"]["n_kv_heads"] == 2
  assert rows[0]["n_test"] == 256 and 0 <= rows[0]["ceiling_acc"] <= 1
  cfg.strong.size = "tiny-2"  # the wrong shape for this checkpoint
  with pytest.raises(config_lib.ConfigError, match="does not have the shape of size 'tiny-2'"):
    config_lib.validate(cfg, jax.device_count())


@pytest.mark.slow
def test_export_command_writes_a_trained_stage_that_transformers_runs(tmp_path, nlp_config):
  """`python -m w2s_jax.export` on a stage of a finished run: transformers reproduces our
  language-model logits, and the classifier head is saved beside."""
  from w2s_jax.export import export_stage  # noqa: PLC0415
  from w2s_jax.stages import StageStore  # noqa: PLC0415

  cfg = nlp_config("tiny")
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs, cfg.losses = 640, 256, 1.0, ("xent",)
  rows = experiment.run(cfg, str(tmp_path / "work"))
  key = rows[0]["stage_keys"]["ceiling"]
  mc = export_stage(str(tmp_path / "work" / "stages" / f"train-{key}"), str(tmp_path / "out"))
  tr = train.Trainer(mc, 2, sharding.make_mesh(1, 8, 1), sharding.DEFAULT_RULES)
  params = StageStore(str(tmp_path / "work")).params("train", key, tr.abstract_params(),
                                                     tr.param_shardings)
  model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out")).eval()
  tokens, _, mask = batch()
  tokens = tokens % mc.vocab_size
  assert_real_positions_close(hf_logits(model, tokens, mask), our_logits(tr, params, tokens), mask)
  head = np.load(tmp_path / "out" / "classifier_head.npy")
  np.testing.assert_allclose(head, np.asarray(params["cls_head"]))


def test_missing_or_misshaped_tensors_are_named(tmp_path):
  import json  # noqa: PLC0415

  from safetensors.numpy import load_file, save_file  # noqa: PLC0415
  model = hf_model("llama")
  model.save_pretrained(tmp_path)
  mc = hf_lib.load_config(str(tmp_path))
  tr = train.Trainer(mc, 2, sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]),
                     sharding.DEFAULT_RULES)
  tensors = load_file(str(tmp_path / "model.safetensors"))
  del tensors["model.layers.1.self_attn.k_proj.weight"]
  save_file(tensors, str(tmp_path / "model.safetensors"))
  with pytest.raises(CheckpointError, match="no tensor 'model.layers.1.self_attn.k_proj.weight' "
                                            r"\(parameter blocks/wk\)"):
    jax.block_until_ready(hf_lib.load_params(str(tmp_path), tr.abstract_params(),
                                             tr.param_shardings))
  cfg = json.loads((tmp_path / "config.json").read_text())
  cfg["intermediate_size"] = 96  # the file's MLP tensors are 128 wide
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  tr = train.Trainer(hf_lib.load_config(str(tmp_path)), 2, tr.mesh, sharding.DEFAULT_RULES)
  with pytest.raises(CheckpointError, match=r"tensor model.layers.0.mlp.gate_proj.weight in "
                                            r"model.safetensors has shape \(128, 64\), the "
                                            r"checkpoint's config implies \(96, 64\)"):
    hf_lib.load_params(str(tmp_path), tr.abstract_params(), tr.param_shardings)
