"""Hugging Face checkpoints in and out: GPT-2, Llama, Mistral, Qwen2/2.5 and SmolLM safetensors.

Import reads a folder (offline) or a Hub id (downloaded with huggingface_hub on a pod) into the
w2s_jax transformer's parameter dict, SHARDED: every array is built with
`jax.make_array_from_callback`, and each callback reads from memory-mapped safetensors only what
its shard needs (one layer's tensor at most when a transpose is involved), so no host or device
ever holds the whole model. bf16 files are read through ml_dtypes (no torch needed).
Export writes a safetensors folder with a config.json that transformers loads.
"""
import json
import os

import jax
import ml_dtypes
import numpy as np

from w2s_jax.models.sizes import GPT2, LLAMA, ModelConfig

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64}
LLAMA_TYPES = ("llama", "mistral", "qwen2")


# ------------------------------------------------------------------------- safetensors files
class SafeTensors:
  """Name -> lazily sliced array over every *.safetensors file of a folder (memory-mapped)."""

  def __init__(self, folder: str):
    self.index = {}
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if not files:
      raise FileNotFoundError(f"no *.safetensors file in {folder}")
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
      for key, meta in header.items():
        if key != "__metadata__":
          self.index[key] = (path, 8 + n, meta)

  def __contains__(self, name):
    return name in self.index

  def get(self, name: str) -> np.ndarray:
    """A read-only memory map of tensor `name`: slicing it reads only those bytes."""
    if name not in self.index:
      raise KeyError(f"checkpoint has no tensor {name!r}")
    path, base, meta = self.index[name]
    if meta["dtype"] not in DTYPES:
      raise ValueError(f"tensor {name!r}: unsupported dtype {meta['dtype']}")
    start, end = meta["data_offsets"]
    return np.memmap(path, dtype=DTYPES[meta["dtype"]], mode="r", offset=base + start,
                     shape=tuple(meta["shape"]))


# ------------------------------------------------------------------------------- configs
def model_config_from_hf(hf: dict) -> ModelConfig:
  kind = hf.get("model_type")
  if kind == "gpt2":
    if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
      raise ValueError(f"gpt2 activation {hf['activation_function']!r} is not supported")
    return ModelConfig(**dict(GPT2, vocab_size=hf["vocab_size"], d_model=hf["n_embd"],
                              n_layers=hf["n_layer"], n_heads=hf["n_head"],
                              d_ff=hf.get("n_inner") or 4 * hf["n_embd"],
                              max_len=hf["n_positions"],
                              norm_eps=hf.get("layer_norm_epsilon", 1e-5)))
  if kind in LLAMA_TYPES:
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or ({} if rope.get("rope_type", "default") == "default"
                                          else rope)
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
      raise ValueError(f"{kind}: rope scaling {scaling} is not supported")
    if hf.get("hidden_act", "silu") != "silu":
      raise ValueError(f"{kind}: activation {hf['hidden_act']!r} is not supported")
    if kind != "qwen2" and hf.get("attention_bias"):
      raise ValueError(f"{kind}: attention_bias (q, k, v AND o biases) is not supported")
    if hf.get("mlp_bias"):
      raise ValueError(f"{kind}: mlp_bias is not supported")
    if kind == "qwen2" and hf.get("use_sliding_window"):
      raise ValueError("qwen2: use_sliding_window (on layers from max_window_layers) is not "
                       "supported")
    heads = hf["num_attention_heads"]
    return ModelConfig(**dict(
        LLAMA, vocab_size=hf["vocab_size"], d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"], n_heads=heads,
        n_kv_heads=hf.get("num_key_value_heads") or heads, d_ff=hf["intermediate_size"],
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
        max_len=hf.get("max_position_embeddings", 2048),
        rope_theta=float(hf.get("rope_theta") or rope.get("rope_theta", 10000.0)),
        norm_eps=hf.get("rms_norm_eps", 1e-6), tied_embeddings=bool(hf.get(
            "tie_word_embeddings", False)), qkv_bias=kind == "qwen2",
        sliding_window=(hf.get("sliding_window") or 0) if kind == "mistral" else 0))
  raise ValueError(f"model_type {kind!r} is not supported (gpt2, llama, mistral, qwen2)")


def hf_config(mc: ModelConfig) -> dict:
  """config.json for `mc` (the inverse of model_config_from_hf)."""
  if mc.pos_emb == "learned":
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": mc.vocab_size, "n_positions": mc.max_len, "n_embd": mc.d_model,
            "n_layer": mc.n_layers, "n_head": mc.n_heads, "n_inner": mc.d_ff,
            "layer_norm_epsilon": mc.norm_eps, "activation_function": "gelu_new",
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "tie_word_embeddings": True}
  kind = "qwen2" if mc.qkv_bias else "mistral" if mc.sliding_window else "llama"
  extra = {"sliding_window": mc.sliding_window} if mc.sliding_window else {}
  return {"model_type": kind, "architectures": [{"qwen2": "Qwen2ForCausalLM", "llama":
                                                 "LlamaForCausalLM", "mistral":
                                                 "MistralForCausalLM"}[kind]], **extra,
          "vocab_size": mc.vocab_size, "hidden_size": mc.d_model,
          "intermediate_size": mc.d_ff, "num_hidden_layers": mc.n_layers,
          "num_attention_heads": mc.n_heads, "num_key_value_heads": mc.kv_heads,
          "head_dim": mc.dim_head, "max_position_embeddings": mc.max_len,
          "rope_theta": mc.rope_theta, "rms_norm_eps": mc.norm_eps, "hidden_act": "silu",
          "tie_word_embeddings": mc.tied_embeddings, "attention_bias": False,
          "torch_dtype": "float32"}


# ------------------------------------------------------------------- name and layout mapping
def _gpt2_prefix(st: SafeTensors) -> str:
  return "transformer." if "transformer.wte.weight" in st else ""


def readers(mc: ModelConfig, st: SafeTensors) -> dict:
  """Our parameter path -> read(layer) returning that layer's (or the global) array in OUR
  layout, as a lazily sliceable numpy array where no transpose is needed."""
  d, h, k, hd = mc.d_model, mc.n_heads, mc.kv_heads, mc.dim_head
  g = st.get
  if mc.pos_emb == "learned":  # GPT-2: Conv1D weights are stored [in, out]
    p = _gpt2_prefix(st)
    layer = lambda i, name: g(f"{p}h.{i}.{name}")  # noqa: E731
    return {
        ("embed",): lambda _: g(f"{p}wte.weight"),
        ("pos_embed",): lambda _: g(f"{p}wpe.weight"),
        ("final_norm", "scale"): lambda _: g(f"{p}ln_f.weight"),
        ("final_norm", "bias"): lambda _: g(f"{p}ln_f.bias"),
        ("blocks", "norm1", "scale"): lambda i: layer(i, "ln_1.weight"),
        ("blocks", "norm1", "bias"): lambda i: layer(i, "ln_1.bias"),
        ("blocks", "norm2", "scale"): lambda i: layer(i, "ln_2.weight"),
        ("blocks", "norm2", "bias"): lambda i: layer(i, "ln_2.bias"),
        ("blocks", "wq"): lambda i: layer(i, "attn.c_attn.weight")[:, :d].reshape(d, h, hd),
        ("blocks", "wk"): lambda i: layer(i, "attn.c_attn.weight")[:, d:2 * d].reshape(d, h, hd),
        ("blocks", "wv"): lambda i: layer(i, "attn.c_attn.weight")[:, 2 * d:].reshape(d, h, hd),
        ("blocks", "bq"): lambda i: layer(i, "attn.c_attn.bias")[:d].reshape(h, hd),
        ("blocks", "bk"): lambda i: layer(i, "attn.c_attn.bias")[d:2 * d].reshape(h, hd),
        ("blocks", "bv"): lambda i: layer(i, "attn.c_attn.bias")[2 * d:].reshape(h, hd),
        ("blocks", "wo"): lambda i: layer(i, "attn.c_proj.weight").reshape(h, hd, d),
        ("blocks", "bo"): lambda i: layer(i, "attn.c_proj.bias"),
        ("blocks", "w_in"): lambda i: layer(i, "mlp.c_fc.weight"),
        ("blocks", "b_in"): lambda i: layer(i, "mlp.c_fc.bias"),
        ("blocks", "w_out"): lambda i: layer(i, "mlp.c_proj.weight"),
        ("blocks", "b_out"): lambda i: layer(i, "mlp.c_proj.bias"),
    }
  # Llama family: nn.Linear weights are stored [out, in].
  layer = lambda i, name: g(f"model.layers.{i}.{name}")  # noqa: E731
  out = {
      ("embed",): lambda _: g("model.embed_tokens.weight"),
      ("final_norm", "scale"): lambda _: g("model.norm.weight"),
      ("blocks", "norm1", "scale"): lambda i: layer(i, "input_layernorm.weight"),
      ("blocks", "norm2", "scale"): lambda i: layer(i, "post_attention_layernorm.weight"),
      ("blocks", "wq"): lambda i: layer(i, "self_attn.q_proj.weight").T.reshape(d, h, hd),
      ("blocks", "wk"): lambda i: layer(i, "self_attn.k_proj.weight").T.reshape(d, k, hd),
      ("blocks", "wv"): lambda i: layer(i, "self_attn.v_proj.weight").T.reshape(d, k, hd),
      ("blocks", "wo"): lambda i: layer(i, "self_attn.o_proj.weight").T.reshape(h, hd, d),
      ("blocks", "w_gate"): lambda i: layer(i, "mlp.gate_proj.weight").T,
      ("blocks", "w_in"): lambda i: layer(i, "mlp.up_proj.weight").T,
      ("blocks", "w_out"): lambda i: layer(i, "mlp.down_proj.weight").T,
  }
  if mc.qkv_bias:
    out[("blocks", "bq")] = lambda i: layer(i, "self_attn.q_proj.bias").reshape(h, hd)
    out[("blocks", "bk")] = lambda i: layer(i, "self_attn.k_proj.bias").reshape(k, hd)
    out[("blocks", "bv")] = lambda i: layer(i, "self_attn.v_proj.bias").reshape(k, hd)
  if not mc.tied_embeddings:
    out[("lm_head",)] = lambda _: g("lm_head.weight").T
  return out


# ---------------------------------------------------------------------------------- import
def local_folder(source: str) -> str:
  """A folder as is; a Hub id downloaded (safetensors, configs, tokenizer) on a machine with
  the Hub."""
  if os.path.isdir(source):
    return source
  from huggingface_hub import snapshot_download  # noqa: PLC0415
  try:
    return snapshot_download(source, allow_patterns=["*.safetensors", "*.json"])
  except Exception as e:  # noqa: BLE001  (offline, unknown id, gated model...)
    raise FileNotFoundError(f"checkpoint {source!r}: not a folder and not downloadable from "
                            f"the Hugging Face Hub ({type(e).__name__}: {e})") from None


def load_config(source: str) -> ModelConfig:
  with open(os.path.join(local_folder(source), "config.json")) as f:
    return model_config_from_hf(json.load(f))


def load_params(source: str, abstract: dict, shardings: dict) -> dict:
  """Checkpoint weights into a parameter dict shaped like `abstract` (a Trainer's), each array
  assembled shard by shard on its `shardings`."""
  folder = local_folder(source)
  with open(os.path.join(folder, "config.json")) as f:
    mc = model_config_from_hf(json.load(f))
  return assemble(readers(mc, SafeTensors(folder)), mc, abstract, shardings, source)


def assemble(read: dict, mc: ModelConfig, abstract: dict, shardings: dict, source: str) -> dict:
  """Build every parameter with `jax.make_array_from_callback`: each shard reads only its part
  (stacked layers one at a time). Parameters no checkpoint has (the classification head) are
  zeros."""

  def build(path, shape_dtype, shard):
    path = tuple(p.key for p in path)
    if path not in read:
      if path == ("cls_head",):
        return jax.device_put(np.zeros(shape_dtype.shape, shape_dtype.dtype), shard)
      raise KeyError(f"checkpoint {source}: nothing maps to parameter {'/'.join(path)}")
    fn, stacked = read[path], path[0] == "blocks"

    def callback(index):
      if stacked:
        layers = range(*index[0].indices(shape_dtype.shape[0]))
        return np.stack([np.asarray(fn(i)[index[1:]], np.float32) for i in layers])
      return np.asarray(fn(None)[index], np.float32)

    want = tuple(shape_dtype.shape)
    got = (mc.n_layers,) + fn(0).shape if stacked else fn(None).shape
    if tuple(got) != want:
      raise ValueError(f"checkpoint {source}: {'/'.join(path)} has shape {got}, the model "
                       f"expects {want}")
    return jax.make_array_from_callback(want, shard, callback)

  return jax.tree_util.tree_map_with_path(build, abstract, shardings)


# ---------------------------------------------------------------------------------- export
def export(mc: ModelConfig, params: dict, folder: str, tokenizer_file: str = "") -> None:
  """Write `params` as a Hugging Face safetensors folder (config.json, model.safetensors)."""
  from safetensors.numpy import save_file  # noqa: PLC0415
  os.makedirs(folder, exist_ok=True)
  p = jax.tree.map(lambda x: np.asarray(jax.device_get(x), np.float32), params)
  b, d = p["blocks"], mc.d_model
  tensors = {}
  for i in range(mc.n_layers):
    if mc.pos_emb == "learned":
      pre = f"transformer.h.{i}."
      tensors.update({
          pre + "ln_1.weight": b["norm1"]["scale"][i], pre + "ln_1.bias": b["norm1"]["bias"][i],
          pre + "ln_2.weight": b["norm2"]["scale"][i], pre + "ln_2.bias": b["norm2"]["bias"][i],
          pre + "attn.c_attn.weight": np.concatenate(
              [b[w][i].reshape(d, -1) for w in ("wq", "wk", "wv")], 1),
          pre + "attn.c_attn.bias": np.concatenate([b[w][i].ravel() for w in ("bq", "bk", "bv")]),
          pre + "attn.c_proj.weight": b["wo"][i].reshape(-1, d),
          pre + "attn.c_proj.bias": b["bo"][i],
          pre + "mlp.c_fc.weight": b["w_in"][i], pre + "mlp.c_fc.bias": b["b_in"][i],
          pre + "mlp.c_proj.weight": b["w_out"][i], pre + "mlp.c_proj.bias": b["b_out"][i]})
    else:
      pre = f"model.layers.{i}."
      tensors.update({
          pre + "input_layernorm.weight": b["norm1"]["scale"][i],
          pre + "post_attention_layernorm.weight": b["norm2"]["scale"][i],
          pre + "self_attn.q_proj.weight": b["wq"][i].reshape(d, -1).T,
          pre + "self_attn.k_proj.weight": b["wk"][i].reshape(d, -1).T,
          pre + "self_attn.v_proj.weight": b["wv"][i].reshape(d, -1).T,
          pre + "self_attn.o_proj.weight": b["wo"][i].reshape(-1, d).T,
          pre + "mlp.gate_proj.weight": b["w_gate"][i].T,
          pre + "mlp.up_proj.weight": b["w_in"][i].T,
          pre + "mlp.down_proj.weight": b["w_out"][i].T})
      if mc.qkv_bias:
        tensors.update({pre + f"self_attn.{n}_proj.bias": b[f"b{n}"][i].ravel()
                        for n in ("q", "k", "v")})
  if mc.pos_emb == "learned":
    tensors.update({"transformer.wte.weight": p["embed"], "transformer.wpe.weight":
                    p["pos_embed"], "transformer.ln_f.weight": p["final_norm"]["scale"],
                    "transformer.ln_f.bias": p["final_norm"]["bias"]})
  else:
    tensors.update({"model.embed_tokens.weight": p["embed"],
                    "model.norm.weight": p["final_norm"]["scale"]})
    if not mc.tied_embeddings:
      tensors["lm_head.weight"] = p["lm_head"].T
  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
            os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(hf_config(mc), f, indent=1)
  if tokenizer_file:
    import shutil  # noqa: PLC0415
    shutil.copy(tokenizer_file, os.path.join(folder, "tokenizer.json"))




def fingerprint(source: str) -> str:
  """Identity of a checkpoint for stage keys: config.json and every safetensors header (names,
  shapes, dtypes, offsets) and file size. Cheap for a 16 GB model; a weight changed in place
  without any size change would go unnoticed."""
  import hashlib  # noqa: PLC0415
  folder = local_folder(source)
  h = hashlib.sha256(open(os.path.join(folder, "config.json"), "rb").read())
  for name in sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")):
    path = os.path.join(folder, name)
    with open(path, "rb") as f:
      h.update(f.read(8 + int.from_bytes(f.read(8), "little")))
    h.update(str(os.path.getsize(path)).encode())
  return h.hexdigest()[:16]
