"""Llama 3.x rope scaling, Qwen3, Gemma 2 and Gemma 3 against transformers' own classes (tiny
random configs, every weight perturbed; fp32), KV-cache decoding, export, and the size table."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file

from w2s_jax import dry_run, sharding, train
from w2s_jax.models import hf as hf_lib, model_config, param_count
from w2s_jax.models.hf_config import model_config_from_hf

from tests.test_hf import assert_real_positions_close, hf_logits

LENGTH = 40  # rows cross the sliding windows (5) and llama3's original context (32)
COMMON = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)

# name -> (transformers class, config, what it exercises)
FAMILIES = {
    "llama3": (transformers.LlamaForCausalLM, transformers.LlamaConfig(
        **COMMON, head_dim=32, rope_theta=500.0, tie_word_embeddings=False, rope_scaling=dict(
            rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=32)),
        "llama3 rope (frequencies below, inside and above the ramp), GQA, head_dim 32 != 64/4"),
    "llama-linear": (transformers.LlamaForCausalLM, transformers.LlamaConfig(
        **COMMON, rope_theta=1000.0, tie_word_embeddings=True,
        rope_scaling=dict(rope_type="linear", factor=4.0)), "linear rope scaling, tied"),
    "qwen3": (transformers.Qwen3ForCausalLM, transformers.Qwen3Config(
        **COMMON, head_dim=32, rope_theta=1e4, tie_word_embeddings=True),
        "per-head q/k RMSNorm, head_dim 32 != 64/4, tied"),
    "qwen3-yarn": (transformers.Qwen3ForCausalLM, transformers.Qwen3Config(
        **COMMON, head_dim=16, rope_theta=1e4, tie_word_embeddings=False, rope_scaling=dict(
            rope_type="yarn", factor=4.0, original_max_position_embeddings=16)),
        "yarn rope (ramp and attention factor), untied"),
    "gemma2": (transformers.Gemma2ForCausalLM, transformers.Gemma2Config(
        **COMMON, head_dim=32, query_pre_attn_scalar=24, sliding_window=5,
        attn_logit_softcapping=2.0, final_logit_softcapping=3.0, rope_theta=1e4,
        hidden_activation="gelu_pytorch_tanh"),
        "GeGLU, (1 + w) norms before and after attention and MLP, sqrt(d) embeddings, "
        "local/global layers (window 5), attention and final soft-capping, query scale 24^-1/2"),
    "gemma3": (transformers.Gemma3ForCausalLM, transformers.Gemma3TextConfig(
        **COMMON, head_dim=32, query_pre_attn_scalar=24, sliding_window=5,
        sliding_window_pattern=3, rope_theta=1e4, rope_local_base_freq=100.0,
        rope_scaling=dict(rope_type="linear", factor=2.0)),
        "pattern 3 (local, local, global, local), local rope base 100, linear scaling on "
        "global layers only, (1 + w) q/k norms"),
}


def hf_model(name):
  cls, cfg, _ = FAMILIES[name]
  cfg._attn_implementation = "eager"  # one attention kernel for the original and its export
  model = cls(cfg)
  torch.manual_seed(0)
  with torch.no_grad():  # every weight random, norms included: a swapped tensor cannot hide
    for p in model.parameters():
      p.add_(torch.randn_like(p) * 0.1)
  return model.eval()


def rows():
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, 300, (3, LENGTH)).astype(np.int32)
  lengths = np.array([LENGTH, 23, 7], np.int32)
  return tokens, lengths, (np.arange(LENGTH)[None] < lengths[:, None]).astype(np.int64)


def one_device():
  return sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  """name -> (transformers model, its folder, our Trainer, our parameters), built once."""
  out = {}
  for name in FAMILIES:
    folder = tmp_path_factory.mktemp(name)
    model = hf_model(name)
    model.save_pretrained(folder)
    tr = train.Trainer(hf_lib.load_config(str(folder)), 2, one_device(), sharding.DEFAULT_RULES)
    params = hf_lib.load_params(str(folder), tr.abstract_params(), tr.param_shardings)
    out[name] = (model, folder, tr, params)
  return out


def our_logits(tr, params, tokens):
  with jax.default_matmul_precision("highest"):
    return np.asarray(jax.jit(lambda p, t: (lambda m: m.lm_logits(m.hidden(t)))(tr.merge(p)))(
        params, jnp.asarray(tokens)))


@pytest.mark.parametrize("name", FAMILIES)
def test_import_matches_transformers(name, imported):
  model, _, tr, params = imported[name]
  tokens, _, mask = rows()
  ours, ref = our_logits(tr, params, tokens), hf_logits(model, tokens, mask)
  assert_real_positions_close(ours, ref, mask)
  print(f"{name}: max |diff| {np.abs(ours - ref)[mask.astype(bool)].max():.2e}")


def test_imported_configs_carry_the_family_traits(imported):
  mc = {name: imported[name][2].model_cfg for name in FAMILIES}
  assert (mc["llama3"].rope_type, mc["llama3"].rope_original_max_len) == ("llama3", 32)
  assert mc["qwen3"].qk_norm and mc["qwen3"].dim_head == 32
  assert mc["qwen3-yarn"].rope_attention_factor == pytest.approx(0.1 * np.log(4.0) + 1)
  assert mc["gemma2"].layer_windows() == (5, 0, 5, 0) and mc["gemma2"].attn_softcap == 2.0
  assert mc["gemma3"].layer_windows() == (5, 5, 0, 5) and mc["gemma3"].rope_local_theta == 100.0
  # Gemma's per-layer differences are scanned arrays, not per-layer code.
  from w2s_jax.models.transformer import layer_arrays  # noqa: PLC0415
  arrays = layer_arrays(mc["gemma3"])
  assert arrays["window"].tolist() == [5, 5, 0, 5] and arrays["freqs"].shape == (4, 16)
  assert "window" not in layer_arrays(mc["llama3"])


@pytest.mark.parametrize("name", FAMILIES)
def test_rope_frequencies_are_those_of_transformers(name, imported):
  from w2s_jax.models import rope  # noqa: PLC0415
  model, _, tr, _ = imported[name]
  freqs, scale = rope.layer_tables(tr.model_cfg)
  emb = model.model.rotary_emb
  for i, w in enumerate(tr.model_cfg.layer_windows()):
    kind = "sliding_attention" if w else "full_attention"
    ref = getattr(emb, f"{kind}_inv_freq", None) if name == "gemma3" else emb.inv_freq
    ref_scale = getattr(emb, f"{kind}_attention_scaling", None) if name == "gemma3" else \
        emb.attention_scaling
    np.testing.assert_allclose(freqs[i], ref.numpy(), rtol=1e-6)
    assert scale[i] == pytest.approx(ref_scale)
  if name == "llama3":  # frequencies kept, slowed by the factor, and on the ramp between
    base = rope.inv_freq(tr.model_cfg, 500.0, "default")
    kept, slowed = np.isclose(freqs[0], base), np.isclose(freqs[0], base / 8)
    assert kept.any() and slowed.any() and (~kept & ~slowed).any()


@pytest.mark.parametrize("name", FAMILIES)
def test_kv_cache_decoding_equals_step_by_step(name, imported):
  """Prefill + cached decode steps give the logits of rerunning the whole sequence each step,
  past the sliding window, from right-padded prompts."""
  _, _, tr, params = imported[name]
  steps, width = 8, 12
  rng = np.random.default_rng(1)
  lengths = np.array([12, 7, 3], np.int32)
  prompt = np.zeros((3, width), np.int32)
  for i, n in enumerate(lengths):
    prompt[i, :n] = rng.integers(0, 300, n)
  prefill = jax.jit(lambda p, t, n: tr.merge(p).prefill(t, n, width + steps))
  decode = jax.jit(lambda p, t, pos, c: tr.merge(p).decode_step(t, pos, c))
  full = jax.jit(lambda p, t: (lambda m: m.lm_logits(m.hidden(t)))(tr.merge(p)))
  seq, n = np.zeros((3, width + steps), np.int32), lengths.copy()
  seq[:, :width] = prompt
  with jax.default_matmul_precision("highest"):
    logits, cache = prefill(params, jnp.asarray(prompt), jnp.asarray(lengths))
    for _ in range(steps):
      ref = np.asarray(full(params, jnp.asarray(seq)))[np.arange(3), n - 1]
      np.testing.assert_allclose(np.asarray(logits), ref, atol=1e-4, rtol=0)
      token = np.argmax(ref, -1).astype(np.int32)
      seq[np.arange(3), n] = token
      logits, cache = decode(params, jnp.asarray(token), jnp.asarray(n), cache)
      n = n + 1


@pytest.mark.parametrize("name", FAMILIES)
def test_export_gives_back_the_same_checkpoint(name, imported, tmp_path):
  """Import then export: the same tensors, bit for bit, and a config.json transformers loads
  into the same model (the mapping table is one for both directions)."""
  model, folder, tr, params = imported[name]
  hf_lib.export(tr.model_cfg, params, str(tmp_path))
  before, after = load_file(str(folder / "model.safetensors")), load_file(
      str(tmp_path / "model.safetensors"))
  assert set(after) == set(before) - {"lm_head.weight"} if tr.model_cfg.tied_embeddings \
      else set(after) == set(before)
  for key, value in after.items():
    np.testing.assert_array_equal(value, before[key], err_msg=key)
  again = transformers.AutoModelForCausalLM.from_pretrained(
      str(tmp_path), attn_implementation="eager").eval()
  assert type(again) is type(model)
  tokens, _, mask = rows()
  assert_real_positions_close(hf_logits(again, tokens, mask), hf_logits(model, tokens, mask),
                              mask, atol=1e-6)
  assert hf_lib.load_config(str(tmp_path)).explicit() == tr.model_cfg.explicit()


def test_multimodal_gemma3_checkpoint_imports_its_language_model(imported, tmp_path):
  """A Gemma 3 4B+ checkpoint: config under text_config, tensors under language_model.model.
  (the vision tower's tensors are there too, and ignored)."""
  from safetensors.numpy import save_file  # noqa: PLC0415
  model, folder, tr, params = imported["gemma3"]
  text = json.loads((folder / "config.json").read_text())
  (tmp_path / "config.json").write_text(json.dumps(
      {"model_type": "gemma3", "text_config": text, "vision_config": {"hidden_size": 8}}))
  tensors = {"language_model." + k: v for k, v in load_file(
      str(folder / "model.safetensors")).items()}
  tensors["vision_tower.patch_embedding.weight"] = np.zeros((8, 3), np.float32)
  save_file(tensors, str(tmp_path / "model.safetensors"))
  assert hf_lib.load_config(str(tmp_path)) == tr.model_cfg
  again = hf_lib.load_params(str(tmp_path), tr.abstract_params(), tr.param_shardings)
  jax.tree.map(np.testing.assert_array_equal, again, params)


def test_export_refuses_a_model_no_family_runs(tmp_path):
  mc = model_config("tiny-llama-2", 300, qk_norm=True, qkv_bias=True)  # Qwen3 has no qkv bias
  with pytest.raises(ValueError, match="no Hugging Face equivalent.*qwen3"):
    hf_lib.export(mc, {}, str(tmp_path))


# ---------------------------------------------------------------------------- the size table
# config.json of the published checkpoints (the fields that shape the model).
PUBLISHED = {
    "llama-3.2-1b": dict(model_type="llama", vocab_size=128256, hidden_size=2048,
                         intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
                         rms_norm_eps=1e-05, rope_theta=500000.0, tie_word_embeddings=True,
                         rope_scaling=dict(factor=32.0, high_freq_factor=4.0,
                                           low_freq_factor=1.0, rope_type="llama3",
                                           original_max_position_embeddings=8192)),
    "llama-3.1-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096,
                         intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, max_position_embeddings=131072,
                         rms_norm_eps=1e-05, rope_theta=500000.0, tie_word_embeddings=False,
                         rope_scaling=dict(factor=8.0, high_freq_factor=4.0, low_freq_factor=1.0,
                                           rope_type="llama3",
                                           original_max_position_embeddings=8192)),
    "qwen3-0.6b": dict(model_type="qwen3", vocab_size=151936, hidden_size=1024,
                       intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                       rms_norm_eps=1e-06, rope_theta=1000000, rope_scaling=None,
                       tie_word_embeddings=True, use_sliding_window=False, sliding_window=None),
    "gemma-2-2b": dict(model_type="gemma2", vocab_size=256000, hidden_size=2304,
                       intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
                       num_key_value_heads=4, head_dim=256, max_position_embeddings=8192,
                       rms_norm_eps=1e-06, rope_theta=10000.0, query_pre_attn_scalar=256,
                       sliding_window=4096, attn_logit_softcapping=50.0,
                       final_logit_softcapping=30.0, hidden_activation="gelu_pytorch_tanh"),
    "gemma-3-1b": dict(model_type="gemma3_text", vocab_size=262144, hidden_size=1152,
                       intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
                       num_key_value_heads=1, head_dim=256, max_position_embeddings=32768,
                       rms_norm_eps=1e-06, rope_theta=1000000, rope_local_base_freq=10000,
                       rope_scaling=None, query_pre_attn_scalar=256, sliding_window=512,
                       sliding_window_pattern=6, attn_logit_softcapping=None,
                       final_logit_softcapping=None, hidden_activation="gelu_pytorch_tanh"),
    "gemma-3-4b": dict(model_type="gemma3", text_config=dict(  # the multimodal checkpoint
        hidden_size=2560, intermediate_size=10240, model_type="gemma3_text",
        num_hidden_layers=34, rope_scaling=dict(factor=8.0, rope_type="linear"),
        sliding_window=1024)),
}


@pytest.mark.parametrize("size", PUBLISHED)
def test_size_table_rows_are_the_published_configs(size):
  assert model_config_from_hf(json.loads(json.dumps(PUBLISHED[size]))).explicit() == \
      model_config(size).explicit()


@pytest.mark.parametrize("size,expected", [
    ("llama-3.2-1b", 1_235_814_400), ("llama-3.2-3b", 3_212_749_824),
    ("llama-3.1-8b", 8_030_261_248), ("qwen3-0.6b", 596_049_920),
    # Qwen3-1.7B's files also store the tied lm_head: the Hub counts 2,031,739,904.
    ("qwen3-1.7b", 1_720_574_976), ("qwen3-4b", 4_022_468_096), ("qwen3-8b", 8_190_735_360),
    ("gemma-2-2b", 2_614_341_888), ("gemma-2-9b", 9_241_705_984),
    ("gemma-2-27b", 27_227_128_320), ("gemma-3-1b", 999_885_952)])
def test_new_sizes_have_the_published_parameter_counts(size, expected):
  """Distinct parameters (a tied embedding once), as the model cards count them."""
  from flax import nnx  # noqa: PLC0415

  from w2s_jax.models import Transformer  # noqa: PLC0415
  cfg = model_config(size)
  assert param_count(cfg, num_classes=0) == expected
  abstract = nnx.eval_shape(lambda: Transformer(cfg, 2, rngs=nnx.Rngs(0)))
  assert sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param))) == \
      expected + 2 * cfg.d_model


def test_dry_run_flops_count_local_layers_at_their_window():
  g = model_config("gemma-2-9b")
  full = model_config("gemma-2-9b", sliding_window_pattern=1)  # every layer global
  length, tokens = 8192, 8192
  d_attn, saved = g.n_heads * g.dim_head, 0
  for w in g.layer_windows():
    saved += 4 * (length - min(length, w or length)) * d_attn * tokens * 3
  assert dry_run.model_flops(full, tokens, length, "none") - dry_run.model_flops(
      g, tokens, length, "none") == saved > 0
