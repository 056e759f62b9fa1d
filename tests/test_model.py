"""The NNX transformer: both architecture families, heads, logical axes, the size table."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from w2s_jax import sharding
from w2s_jax.models import SIZES, Transformer, model_config, param_count

STYLES = ["tiny-2", "tiny-llama-2"]


def make(size, **kw):
  return Transformer(model_config(size, vocab_size=259), 2, rngs=nnx.Rngs(0), **kw)


@pytest.mark.slow
@pytest.mark.parametrize("size", STYLES)
def test_zero_initialised_head_gives_uniform_probabilities(size):
  model = make(size)
  tokens = jnp.asarray(np.random.default_rng(0).integers(3, 259, (4, 12)), jnp.int32)
  probs = jax.nn.softmax(model(tokens, jnp.array([12, 5, 1, 7])), -1)
  np.testing.assert_allclose(probs, 0.5, atol=1e-7)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN attention needs an NVIDIA GPU "
                    "(benchmarks/device_check.sh runs this test there)")
@pytest.mark.parametrize("size", STYLES)
def test_cudnn_attention_matches_xla_with_padding(size):
  """train.attention='cudnn' (bf16): the logits and gradients of XLA's attention."""
  models = [make(size, dtype=jnp.bfloat16, attention=a) for a in ("xla", "cudnn")]
  head = jnp.asarray(np.random.default_rng(1).normal(size=(models[0].cfg.d_model, 2)), jnp.float32)
  rng = np.random.default_rng(2)
  tokens = jnp.asarray(rng.integers(3, 259, (3, 32)), jnp.int32)
  lengths = jnp.array([32, 17, 5])
  out = []
  for model in models:
    nnx.update(model, {"cls_head": head})
    grads = nnx.grad(lambda m: m(tokens, lengths).astype(jnp.float32).sum())(model)
    out.append((np.float32(model(tokens, lengths)), np.float32(grads["embed"][...])))
  # bf16 rounding only: relative to the largest value (a wrong mask moves logits by O(1)).
  for ours, cudnn in zip(out[0], out[1]):
    np.testing.assert_allclose(ours, cudnn, atol=2e-2 * np.abs(ours).max())


@pytest.mark.slow
@pytest.mark.parametrize("size", STYLES)
def test_reads_the_last_real_token_and_ignores_padding(size):
  model = make(size)
  nnx.update(model, {"cls_head": jnp.asarray(np.random.default_rng(1).normal(size=(
      model.cfg.d_model, 2)), jnp.float32)})
  rng = np.random.default_rng(2)
  tokens = rng.integers(3, 259, (3, 16)).astype(np.int32)
  lengths = np.array([16, 9, 3], np.int32)
  junk = tokens.copy()
  for i, n in enumerate(lengths):
    junk[i, n:] = rng.integers(0, 259, 16 - n)  # any token id after the end, 0 included
  np.testing.assert_allclose(model(tokens, lengths), model(junk, lengths), atol=1e-5)
  # Same answer as the unpadded sequence alone.
  alone = model(tokens[1:2, :9], lengths[1:2])
  np.testing.assert_allclose(model(tokens, lengths)[1], alone[0], atol=1e-5)


def test_llama_style_uses_rope_gqa_swiglu_and_no_positions_table():
  cfg = model_config("tiny-llama-2", vocab_size=259)
  model = Transformer(cfg, 2, rngs=nnx.Rngs(0))
  assert cfg.kv_heads < cfg.n_heads and not hasattr(model, "pos_embed")
  assert model.blocks.wk[...].shape == (cfg.n_layers, cfg.d_model, cfg.kv_heads, cfg.dim_head)
  assert hasattr(model.blocks, "w_gate") and not hasattr(model.blocks, "bq")
  qwen = model_config("qwen2.5-0.5b")
  assert qwen.qkv_bias and not qwen.out_bias and qwen.pos_emb == "rope"


def test_every_parameter_has_logical_axes_of_its_rank():
  for size in ("tiny-2", "tiny-llama-2", "llama-3-8b", "qwen3-0.6b", "gemma-2-2b", "gemma-3-1b"):
    cfg = model_config(size, vocab_size=259)
    _, state = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, 3, rngs=nnx.Rngs(0))))
    axes = sharding.logical_axes(state)
    shapes = nnx.to_pure_dict(state)
    jax.tree.map(lambda a, x: None if len(a) == x.ndim else pytest.fail(f"{a} vs {x.shape}"),
                 axes, shapes, is_leaf=lambda x: isinstance(x, tuple))
    assert axes["blocks"]["w_in"] == ("layers", "embed", "mlp")


@pytest.mark.parametrize("size,expected", [
    ("gpt2", 124_439_808), ("gpt2-medium", 354_823_168), ("gpt2-large", 774_030_080),
    ("gpt2-xl", 1_557_611_200), ("qwen2.5-0.5b", 494_032_768), ("qwen2.5-1.5b", 1_543_714_304),
    ("qwen2.5-7b", 7_615_616_512), ("llama-3-8b", 8_030_261_248)])
def test_size_table_has_the_published_shapes(size, expected):
  """Published parameter counts (without our 2-class head), from the models' HF configs."""
  cfg = model_config(size)
  assert param_count(cfg, num_classes=0) == expected
  abstract = nnx.eval_shape(lambda: Transformer(cfg, 2, rngs=nnx.Rngs(0)))
  n = sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
  assert n == expected + 2 * cfg.d_model


@pytest.mark.slow
def test_remat_and_bf16_compute():
  cfg = model_config("tiny-2", vocab_size=259)
  tokens = jnp.asarray(np.random.default_rng(0).integers(3, 259, (2, 8)), jnp.int32)
  ref = Transformer(cfg, 2, rngs=nnx.Rngs(0))
  for remat in ("full", "dots"):
    np.testing.assert_allclose(Transformer(cfg, 2, remat=remat, rngs=nnx.Rngs(0)).hidden(tokens),
                               ref.hidden(tokens), atol=1e-6)
  half = Transformer(cfg, 2, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  h = half.hidden(tokens)
  assert h.dtype == jnp.bfloat16 and half.embed[...].dtype == jnp.float32
  np.testing.assert_allclose(h.astype(jnp.float32), ref.hidden(tokens), atol=0.1)
  assert ref.lm_logits(ref.hidden(tokens)).shape == (2, 8, 259)


def test_unknown_size_is_a_clear_error():
  with pytest.raises(KeyError, match="unknown model size 'gpt5'"):
    model_config("gpt5")
  assert "llama-3-8b" in SIZES
