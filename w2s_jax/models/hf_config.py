"""config.json <-> ModelConfig for the Hugging Face families we run: GPT-2, Llama (3.x rope
scaling), Mistral, Qwen2/2.5, Qwen3, Gemma 2 and Gemma 3 (text).

Both spellings of rope settings are read: transformers 4's `rope_theta` + `rope_scaling` and
transformers 5's `rope_parameters` (nested per layer type for Gemma 3). Export writes the
transformers 4 spelling, which transformers 5 still reads. Anything a family has that the model
cannot run (biases, activations, bidirectional or irregular local layers...) is refused with its
key named, never ignored.
"""
import math

from w2s_jax.models.sizes import GEMMA, GPT2, LLAMA, ModelConfig

LLAMA_TYPES = ("llama", "mistral", "qwen2", "qwen3")
GEMMA_TYPES = ("gemma2", "gemma3_text")
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
                 "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
                 "qwen3": "Qwen3ForCausalLM", "gemma2": "Gemma2ForCausalLM",
                 "gemma3_text": "Gemma3ForCausalLM"}
# transformers' defaults for keys a Gemma config.json may leave out (multimodal Gemma 3's
# text_config lists little more than its shape).
GEMMA_DEFAULTS = {
    "gemma2": dict(vocab_size=256000, max_position_embeddings=8192, rope_theta=10000.0,
                   sliding_window=4096, query_pre_attn_scalar=256, attn_logit_softcapping=50.0,
                   final_logit_softcapping=30.0),
    "gemma3_text": dict(vocab_size=262208, max_position_embeddings=131072, rope_theta=1e6,
                        rope_local_base_freq=10000.0, sliding_window=4096,
                        sliding_window_pattern=6, query_pre_attn_scalar=256,
                        attn_logit_softcapping=None, final_logit_softcapping=None),
}
GEMMA_SHAPE_DEFAULTS = dict(num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                            rms_norm_eps=1e-6, tie_word_embeddings=True)


# ----------------------------------------------------------------------------------- rope
def _rope_dict(hf: dict, layer_type: str = "") -> dict:
  """The rope settings of (a layer type of) a config, in transformers 5's rope_parameters form."""
  params = dict(hf.get("rope_parameters") or {})
  if "full_attention" in params or "sliding_attention" in params:  # nested per layer type
    params = dict(params.get(layer_type or "full_attention") or {})
  if layer_type == "sliding_attention":  # Gemma 3 (transformers 4): its own base, no scaling
    params.setdefault("rope_theta", hf.get("rope_local_base_freq"))
  else:
    params.update(hf.get("rope_scaling") or {})
    params.setdefault("rope_theta", hf.get("rope_theta"))
  return params


def _mscale(factor, m=1.0):
  return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0


def rope_fields(kind: str, rope: dict, max_len: int, default_theta: float) -> dict:
  """ModelConfig rope fields from a rope_parameters dict (transformers' modeling_rope_utils)."""
  rtype = rope.get("rope_type") or rope.get("type") or "default"
  if (rope.get("partial_rotary_factor") or 1.0) != 1.0:
    raise ValueError(f"{kind}: partial_rotary_factor {rope['partial_rotary_factor']} is not "
                     "supported")
  fields = {"rope_theta": float(rope.get("rope_theta") or default_theta)}
  factor = rope.get("factor")
  original = int(rope.get("original_max_position_embeddings") or max_len)
  if rtype == "default":
    return fields
  if rtype == "linear":
    return dict(fields, rope_type="linear", rope_factor=float(factor))
  if rtype == "llama3":
    return dict(fields, rope_type="llama3", rope_factor=float(factor),
                rope_low_freq_factor=float(rope["low_freq_factor"]),
                rope_high_freq_factor=float(rope["high_freq_factor"]),
                rope_original_max_len=original)
  if rtype == "yarn" and rope.get("truncate", True):
    factor = float(factor or max_len / original)
    attention = rope.get("attention_factor")
    if attention is None:  # resolved here so the model needs only the number
      m, m_all = rope.get("mscale"), rope.get("mscale_all_dim")
      attention = _mscale(factor, m) / _mscale(factor, m_all) if m and m_all else _mscale(factor)
    return dict(fields, rope_type="yarn", rope_factor=factor, rope_original_max_len=original,
                rope_beta_fast=float(rope.get("beta_fast") or 32),
                rope_beta_slow=float(rope.get("beta_slow") or 1),
                rope_attention_factor=float(attention))
  raise ValueError(f"{kind}: rope scaling {rope} is not supported (rope_type default, linear, "
                   "llama3, yarn)")


def _rope_json(mc: ModelConfig) -> dict:
  """rope_theta and rope_scaling (of the global layers) in transformers 4's spelling."""
  scaling = {"linear": dict(rope_type="linear", factor=mc.rope_factor),
             "llama3": dict(rope_type="llama3", factor=mc.rope_factor,
                            low_freq_factor=mc.rope_low_freq_factor,
                            high_freq_factor=mc.rope_high_freq_factor,
                            original_max_position_embeddings=mc.rope_original_max_len),
             "yarn": dict(rope_type="yarn", factor=mc.rope_factor,
                          original_max_position_embeddings=mc.rope_original_max_len,
                          beta_fast=mc.rope_beta_fast, beta_slow=mc.rope_beta_slow,
                          attention_factor=mc.rope_attention_factor)}.get(mc.rope_type)
  return {"rope_theta": mc.rope_theta, "rope_scaling": scaling}


def _pattern(kind: str, layer_types: list) -> int:
  """sliding_window_pattern n (every n-th layer global) of a layer_types list; 0: all local."""
  is_global = [t == "full_attention" for t in layer_types]
  if not any(is_global):
    return 0
  n = is_global.index(True) + 1
  if is_global != [(i + 1) % n == 0 for i in range(len(layer_types))]:
    raise ValueError(f"{kind}: layer_types {layer_types} is not a repeating pattern of local "
                     "layers and one global layer; not supported")
  return n


# ------------------------------------------------------------------------------ families
def _gpt2(hf: dict) -> ModelConfig:
  if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
    raise ValueError(f"gpt2 activation {hf['activation_function']!r} is not supported")
  return ModelConfig(**dict(GPT2, vocab_size=hf["vocab_size"], d_model=hf["n_embd"],
                            n_layers=hf["n_layer"], n_heads=hf["n_head"],
                            d_ff=hf.get("n_inner") or 4 * hf["n_embd"],
                            max_len=hf["n_positions"],
                            norm_eps=hf.get("layer_norm_epsilon", 1e-5)))


def _shape(hf: dict) -> dict:
  heads = hf["num_attention_heads"]
  return dict(vocab_size=hf["vocab_size"], d_model=hf["hidden_size"],
              n_layers=hf["num_hidden_layers"], n_heads=heads,
              n_kv_heads=hf.get("num_key_value_heads") or heads, d_ff=hf["intermediate_size"],
              head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
              max_len=hf.get("max_position_embeddings", 2048))


def _llama(kind: str, hf: dict) -> ModelConfig:
  if hf.get("hidden_act", "silu") != "silu":
    raise ValueError(f"{kind}: activation {hf['hidden_act']!r} is not supported")
  if kind != "qwen2" and hf.get("attention_bias"):
    raise ValueError(f"{kind}: attention_bias (q, k, v AND o biases) is not supported")
  if hf.get("mlp_bias"):
    raise ValueError(f"{kind}: mlp_bias is not supported")
  if kind in ("qwen2", "qwen3") and (hf.get("use_sliding_window") or "sliding_attention" in (
      hf.get("layer_types") or [])):
    raise ValueError(f"{kind}: use_sliding_window (on layers from max_window_layers) is not "
                     "supported")
  shape = _shape(hf)
  return ModelConfig(**dict(
      LLAMA, **shape, **rope_fields(kind, _rope_dict(hf), shape["max_len"], 10000.0),
      norm_eps=hf.get("rms_norm_eps", 1e-6),
      tied_embeddings=bool(hf.get("tie_word_embeddings", False)), qkv_bias=kind == "qwen2",
      qk_norm=kind == "qwen3",
      sliding_window=(hf.get("sliding_window") or 0) if kind == "mistral" else 0))


def _gemma(kind: str, hf: dict) -> ModelConfig:
  hf = {**GEMMA_SHAPE_DEFAULTS, **GEMMA_DEFAULTS[kind], **hf}
  act = hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh"
  if act != "gelu_pytorch_tanh":
    raise ValueError(f"{kind}: activation {act!r} is not supported")
  for key in ("attention_bias", "use_bidirectional_attention"):
    if hf.get(key):
      raise ValueError(f"{kind}: {key} is not supported")
  pattern = 2 if kind == "gemma2" else (hf.get("sliding_window_pattern")
                                        or hf.get("_sliding_window_pattern"))
  if hf.get("layer_types"):
    pattern = _pattern(kind, hf["layer_types"])
  shape = _shape(hf)
  fields = rope_fields(kind, _rope_dict(hf, "full_attention"), shape["max_len"], 10000.0)
  if kind == "gemma3_text":
    local = _rope_dict(hf, "sliding_attention")
    if (local.get("rope_type") or "default") != "default":
      raise ValueError(f"{kind}: rope scaling on local layers {local} is not supported")
    fields["rope_local_theta"] = float(local.get("rope_theta") or 10000.0)
  return ModelConfig(**dict(
      GEMMA, **shape, **fields, norm_eps=hf["rms_norm_eps"],
      tied_embeddings=bool(hf["tie_word_embeddings"]), qk_norm=kind == "gemma3_text",
      sliding_window=hf.get("sliding_window") or 0, sliding_window_pattern=pattern,
      attn_softcap=float(hf.get("attn_logit_softcapping") or 0.0),
      final_softcap=float(hf.get("final_logit_softcapping") or 0.0),
      query_pre_attn_scalar=float(hf["query_pre_attn_scalar"])))


def model_config_from_hf(hf: dict) -> ModelConfig:
  kind = hf.get("model_type")
  if kind == "gemma3" and "text_config" in hf:  # the multimodal checkpoint: its language model
    hf, kind = dict(hf["text_config"], model_type="gemma3_text"), "gemma3_text"
  if kind == "gpt2":
    return _gpt2(hf)
  if kind in LLAMA_TYPES:
    return _llama(kind, hf)
  if kind in GEMMA_TYPES:
    return _gemma(kind, hf)
  raise ValueError(f"model_type {kind!r} is not supported (gpt2, llama, mistral, qwen2, qwen3, "
                   "gemma2, gemma3, gemma3_text)")


# ---------------------------------------------------------------------------------- export
def family(mc: ModelConfig) -> str:
  """The Hugging Face model_type that runs `mc`."""
  if mc.pos_emb == "learned":
    return "gpt2"
  if mc.norm == "gemma_rmsnorm":
    return "gemma3_text" if mc.qk_norm else "gemma2"
  if mc.qk_norm:
    return "qwen3"
  if mc.qkv_bias:
    return "qwen2"
  return "mistral" if mc.sliding_window else "llama"


def hf_config(mc: ModelConfig) -> dict:
  """config.json for `mc` (the inverse of model_config_from_hf; checked to be)."""
  kind = family(mc)
  if kind == "gpt2":
    out = {"vocab_size": mc.vocab_size, "n_positions": mc.max_len, "n_embd": mc.d_model,
           "n_layer": mc.n_layers, "n_head": mc.n_heads, "n_inner": mc.d_ff,
           "layer_norm_epsilon": mc.norm_eps, "activation_function": "gelu_new",
           "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "tie_word_embeddings": True}
  else:
    out = {"vocab_size": mc.vocab_size, "hidden_size": mc.d_model,
           "intermediate_size": mc.d_ff, "num_hidden_layers": mc.n_layers,
           "num_attention_heads": mc.n_heads, "num_key_value_heads": mc.kv_heads,
           "head_dim": mc.dim_head, "max_position_embeddings": mc.max_len, **_rope_json(mc),
           "rms_norm_eps": mc.norm_eps, "tie_word_embeddings": mc.tied_embeddings,
           "attention_bias": False}
  if kind in LLAMA_TYPES:
    out["hidden_act"] = "silu"
  if kind == "mistral":
    out["sliding_window"] = mc.sliding_window
  if kind in GEMMA_TYPES:
    windows = mc.layer_windows()
    out.update(hidden_activation="gelu_pytorch_tanh", sliding_window=mc.sliding_window or None,
               layer_types=["sliding_attention" if w else "full_attention" for w in windows],
               query_pre_attn_scalar=int(mc.query_pre_attn_scalar or mc.dim_head),
               attn_logit_softcapping=mc.attn_softcap or None,
               final_logit_softcapping=mc.final_softcap or None)
  if kind == "gemma3_text":
    out.update(rope_local_base_freq=mc.rope_local_theta or mc.rope_theta,
               sliding_window_pattern=mc.sliding_window_pattern)
  out = {"model_type": kind, "architectures": [ARCHITECTURES[kind]], **out,
         "torch_dtype": "float32"}
  back = model_config_from_hf(out)
  if back.explicit() != mc.explicit():
    diff = {k: (getattr(mc, k), getattr(back, k)) for k in mc.__dataclass_fields__
            if getattr(mc.explicit(), k) != getattr(back.explicit(), k)}
    raise ValueError(f"this model has no Hugging Face equivalent: as {kind} it would differ in "
                     f"(ours, {kind}'s) {diff}")
  return out
