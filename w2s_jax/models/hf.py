"""Hugging Face checkpoints in and out: GPT-2, Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3, Gemma 2/3
and SmolLM safetensors.

One table per family (`mapping`) names, for every parameter, its Hugging Face tensor, that
tensor's shape and the two layout transforms (read: HF -> ours, write: ours -> HF); import,
export and the pre-training check all use it, so they cannot drift apart.
Import reads a folder (offline) or a Hub id (downloaded with huggingface_hub on a pod) into the
w2s_jax transformer's parameter dict, SHARDED: every array is built with
`jax.make_array_from_callback`, and each callback reads from memory-mapped safetensors only what
its shard needs (one layer's tensor at most when a transpose is involved), so no host or device
ever holds the whole model. bf16 files are read through ml_dtypes (no torch needed). Headers are
validated first (`check`): a truncated or damaged file, a missing tensor or a wrong shape is a
CheckpointError naming the file and the tensor, not a numpy or JSON error.
Export writes a safetensors folder with a config.json that transformers loads.
"""
import dataclasses
import json
import math
import os
from typing import Callable

import jax
import ml_dtypes
import numpy as np

from w2s_jax.errors import CheckpointError
from w2s_jax.models.hf_config import family, hf_config, model_config_from_hf  # noqa: F401
from w2s_jax.models.sizes import ModelConfig, model_config, size_of_checkpoint

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64}


# ------------------------------------------------------------------------- safetensors files
def read_header(path: str) -> tuple:
  """(header dict, data start) of one safetensors file, checked against the file's size."""
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    n = int.from_bytes(f.read(8), "little")
    if size < 8 or n > size - 8:
      raise CheckpointError(f"{path}: truncated or not a safetensors file ({size} bytes; its "
                            f"header alone should take {n} after the 8-byte length)")
    try:
      header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({e}): a damaged "
                            "file") from None
  if not isinstance(header, dict):
    raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
  for name, meta in header.items():
    if name == "__metadata__":
      continue
    try:
      start, end = meta["data_offsets"]
      count, dtype = math.prod(meta["shape"]), meta["dtype"]
    except (TypeError, KeyError, ValueError):
      raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry {meta}") \
          from None
    if dtype in DTYPES and end - start != count * np.dtype(DTYPES[dtype]).itemsize:
      raise CheckpointError(f"{path}: tensor {name!r} takes {end - start} bytes, its shape "
                            f"{meta['shape']} and dtype {dtype} need "
                            f"{count * np.dtype(DTYPES[dtype]).itemsize}")
    if 8 + n + end > size:
      raise CheckpointError(f"{path}: tensor {name!r} ends at byte {8 + n + end} but the file "
                            f"has {size} bytes: the file is truncated (download it again)")
  return header, 8 + n


class SafeTensors:
  """Name -> lazily sliced array over every *.safetensors file of a folder (memory-mapped)."""

  def __init__(self, folder: str):
    self.folder, self.index = folder, {}
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if not files:
      raise CheckpointError(f"{folder}: no *.safetensors file")
    for name in files:
      path = os.path.join(folder, name)
      header, base = read_header(path)
      for key, meta in header.items():
        if key != "__metadata__":
          self.index[key] = (path, base, meta)

  def __contains__(self, name):
    return name in self.index

  def where(self, name: str) -> str:
    return os.path.basename(self.index[name][0])

  def shape(self, name: str) -> tuple:
    return tuple(self.index[name][2]["shape"])

  def get(self, name: str) -> np.ndarray:
    """A read-only memory map of tensor `name`: slicing it reads only those bytes."""
    if name not in self.index:
      raise CheckpointError(f"checkpoint {self.folder}: no tensor {name!r}")
    path, base, meta = self.index[name]
    if meta["dtype"] not in DTYPES:
      raise CheckpointError(f"{path}: tensor {name!r} has dtype {meta['dtype']}, not one of "
                            f"{sorted(DTYPES)}")
    start, _ = meta["data_offsets"]
    return np.memmap(path, dtype=DTYPES[meta["dtype"]], mode="r", offset=base + start,
                     shape=tuple(meta["shape"]))


# ------------------------------------------------------------------- the mapping tables
@dataclasses.dataclass(frozen=True)
class Tensor:
  """One Hugging Face tensor and the parameter(s) it holds (several: GPT-2's fused q/k/v).
  `hf`: its name ("{i}": the layer of a stacked parameter); `shape`: its (one layer's) shape;
  `read`: HF array -> tuple of ours (one per path of `ours`); `write`: ours -> HF array."""
  ours: tuple
  hf: str
  shape: tuple
  read: Callable
  write: Callable

  @property
  def stacked(self) -> bool:
    return self.ours[0][0] == "blocks"

  def names(self, n_layers: int) -> list:
    return [self.hf.format(i=i) for i in range(n_layers)] if self.stacked else [self.hf]


def _path(p: str) -> tuple:
  return tuple(p.split("/"))


def reshaped(path, name, shape, ours=None):
  """Stored in our layout (possibly with other dims): GPT-2's Conv1D [in, out], norms, tables."""
  ours = ours or shape
  return Tensor((_path(path),), name, tuple(shape), lambda w: (w.reshape(ours),),
                lambda y: y.reshape(shape))


def transposed(path, name, shape, ours):
  """torch's nn.Linear weight [out, in] <-> ours [in..., out...]."""
  return Tensor((_path(path),), name, tuple(shape), lambda w: (w.T.reshape(ours),),
                lambda y: y.reshape(shape[::-1]).T)


def _gpt2(mc: ModelConfig, p: str) -> list:
  d, h, hd, f = mc.d_model, mc.n_heads, mc.dim_head, mc.d_ff
  layer = p + "h.{i}."
  qkv = lambda w: tuple(w[..., j * d:(j + 1) * d].reshape(w.shape[:-1] + (h, hd))  # noqa: E731
                        for j in range(3))
  return [
      reshaped("embed", p + "wte.weight", (mc.vocab_size, d)),
      reshaped("pos_embed", p + "wpe.weight", (mc.max_len, d)),
      reshaped("final_norm/scale", p + "ln_f.weight", (d,)),
      reshaped("final_norm/bias", p + "ln_f.bias", (d,)),
      reshaped("blocks/norm1/scale", layer + "ln_1.weight", (d,)),
      reshaped("blocks/norm1/bias", layer + "ln_1.bias", (d,)),
      reshaped("blocks/norm2/scale", layer + "ln_2.weight", (d,)),
      reshaped("blocks/norm2/bias", layer + "ln_2.bias", (d,)),
      Tensor((("blocks", "wq"), ("blocks", "wk"), ("blocks", "wv")),
             layer + "attn.c_attn.weight", (d, 3 * d), qkv,
             lambda q, k, v: np.concatenate([x.reshape(d, -1) for x in (q, k, v)], 1)),
      Tensor((("blocks", "bq"), ("blocks", "bk"), ("blocks", "bv")),
             layer + "attn.c_attn.bias", (3 * d,), qkv,
             lambda q, k, v: np.concatenate([x.ravel() for x in (q, k, v)])),
      reshaped("blocks/wo", layer + "attn.c_proj.weight", (d, d), (h, hd, d)),
      reshaped("blocks/bo", layer + "attn.c_proj.bias", (d,)),
      reshaped("blocks/w_in", layer + "mlp.c_fc.weight", (d, f)),
      reshaped("blocks/b_in", layer + "mlp.c_fc.bias", (f,)),
      reshaped("blocks/w_out", layer + "mlp.c_proj.weight", (f, d)),
      reshaped("blocks/b_out", layer + "mlp.c_proj.bias", (d,)),
  ]


def _decoder(mc: ModelConfig, p: str) -> list:
  """Llama, Mistral, Qwen2/3 and Gemma 2/3: nn.Linear weights stored [out, in]."""
  d, h, k, hd, f = mc.d_model, mc.n_heads, mc.kv_heads, mc.dim_head, mc.d_ff
  layer = p + "layers.{i}."
  gemma = mc.post_norms  # Gemma names its pre-MLP norm pre_feedforward_layernorm
  out = [
      reshaped("embed", p + "embed_tokens.weight", (mc.vocab_size, d)),
      reshaped("final_norm/scale", p + "norm.weight", (d,)),
      reshaped("blocks/norm1/scale", layer + "input_layernorm.weight", (d,)),
      reshaped("blocks/norm2/scale", layer + ("pre_feedforward_layernorm.weight" if gemma
                                              else "post_attention_layernorm.weight"), (d,)),
      transposed("blocks/wq", layer + "self_attn.q_proj.weight", (h * hd, d), (d, h, hd)),
      transposed("blocks/wk", layer + "self_attn.k_proj.weight", (k * hd, d), (d, k, hd)),
      transposed("blocks/wv", layer + "self_attn.v_proj.weight", (k * hd, d), (d, k, hd)),
      transposed("blocks/wo", layer + "self_attn.o_proj.weight", (d, h * hd), (h, hd, d)),
      transposed("blocks/w_gate", layer + "mlp.gate_proj.weight", (f, d), (d, f)),
      transposed("blocks/w_in", layer + "mlp.up_proj.weight", (f, d), (d, f)),
      transposed("blocks/w_out", layer + "mlp.down_proj.weight", (d, f), (f, d)),
  ]
  if gemma:
    out += [reshaped("blocks/norm_attn_out/scale", layer + "post_attention_layernorm.weight",
                     (d,)),
            reshaped("blocks/norm_mlp_out/scale", layer + "post_feedforward_layernorm.weight",
                     (d,))]
  if mc.qk_norm:
    out += [reshaped("blocks/q_norm/scale", layer + "self_attn.q_norm.weight", (hd,)),
            reshaped("blocks/k_norm/scale", layer + "self_attn.k_norm.weight", (hd,))]
  if mc.qkv_bias:
    out += [reshaped(f"blocks/b{n}", layer + f"self_attn.{n}_proj.bias", (m * hd,), (m, hd))
            for n, m in (("q", h), ("k", k), ("v", k))]
  if not mc.tied_embeddings:
    out.append(transposed("lm_head", "lm_head.weight", (mc.vocab_size, d), (d, mc.vocab_size)))
  return out


# Where a family's tensors live: the first prefix whose embedding a checkpoint has (the first
# is what export writes). Multimodal Gemma 3 keeps its language model under language_model.
GPT2_PREFIXES = ("transformer.", "")
DECODER_PREFIXES = ("model.", "language_model.model.", "model.language_model.")


def mapping(mc: ModelConfig, st: SafeTensors = None) -> list:
  """`mc`'s table of Tensors, with the tensor-name prefix `st` uses (export: the first)."""
  gpt2 = mc.pos_emb == "learned"
  prefixes = GPT2_PREFIXES if gpt2 else DECODER_PREFIXES
  embed = "wte.weight" if gpt2 else "embed_tokens.weight"
  prefix = next((p for p in prefixes if st is not None and p + embed in st), prefixes[0])
  return (_gpt2 if gpt2 else _decoder)(mc, prefix)


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


def _config(folder: str) -> ModelConfig:
  path = os.path.join(folder, "config.json")
  try:
    with open(path) as f:
      return model_config_from_hf(json.load(f))
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: not valid JSON ({e})") from None
  except KeyError as e:
    raise CheckpointError(f"{path}: no {e.args[0]!r}") from None


def load_config(source: str, fetch: bool = True) -> ModelConfig:
  """The checkpoint's ModelConfig. fetch=False (config validation, the dry run) never
  downloads: a folder, a Hub snapshot already cached, or else the size table's entry of that
  name (sizes.size_of_checkpoint)."""
  if fetch or os.path.isdir(source):
    return _config(local_folder(source))
  from huggingface_hub import snapshot_download  # noqa: PLC0415
  try:
    return _config(snapshot_download(source, allow_patterns=["*.json"], local_files_only=True))
  except Exception:  # noqa: BLE001  (not cached)
    pass
  size = size_of_checkpoint(source)
  if size is None:
    raise FileNotFoundError(
        f"checkpoint {source!r}: its shapes are unknown without fetching its config (not a "
        "folder, not in the Hub cache, no size-table entry of that name): set the model's size "
        "to a size-table name (docs/reference.md) or fetch it once")
  return model_config(size)


def check(source: str, abstract: dict) -> tuple:
  """Validate `source` against the parameters `abstract` describes, from the headers only:
  every file complete, every tensor present with the shape config.json implies, every
  parameter of the model's shape. Returns (model config, files, {path: (Tensor, index)})."""
  folder = local_folder(source)
  mc, st = _config(folder), SafeTensors(folder)
  table = {path: (t, j) for t in mapping(mc, st) for j, path in enumerate(t.ours)}
  check_params(source, abstract, mc, {
      path: (t.hf, t.shape, lambda w, t=t, j=j: t.read(w)[j]) for path, (t, j) in table.items()},
      lambda name: st.shape(name) if name in st else None, st.where)
  return mc, st, table


def check_params(source: str, abstract: dict, mc: ModelConfig, entries: dict, shape_of,
                 where) -> None:
  """Shared by the checkpoint formats. `entries`: our path -> (tensor name, "{i}" for the layer;
  the shape the config implies, or None; read: one such tensor -> ours). `shape_of(name)`: the
  tensor's shape in the file (None: absent); `where(name)`: its file."""
  for keys, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]:
    path = tuple(k.key for k in keys)
    label = "/".join(path)
    if path == ("cls_head",):  # ours: no checkpoint has it
      continue
    if path not in entries:
      raise CheckpointError(f"checkpoint {source}: nothing in it maps to parameter {label} "
                            f"(it holds a {family(mc)} model)")
    name, implied, read = entries[path]
    stacked = path[0] == "blocks"
    # A model of fewer layers (n_layers) reads the checkpoint's first ones.
    layers = leaf.shape[0] if stacked and leaf.shape[0] < mc.n_layers else mc.n_layers
    names = [name.format(i=i) for i in range(layers)] if stacked else [name]
    for n in names:
      shape = shape_of(n)
      if shape is None:
        raise CheckpointError(f"checkpoint {source}: no tensor {n!r} (parameter {label})")
      implied = implied or shape
      if tuple(shape) != tuple(implied):
        raise CheckpointError(f"checkpoint {source}: tensor {n} in {where(n)} has shape "
                              f"{tuple(shape)}, the checkpoint's config implies {tuple(implied)}")
    ours = jax.eval_shape(read, jax.ShapeDtypeStruct(tuple(implied), np.float32)).shape
    got = (layers,) + ours if stacked else ours
    if got != tuple(leaf.shape):
      raise CheckpointError(f"checkpoint {source}: {label} has shape {got}, the model expects "
                            f"{tuple(leaf.shape)} (tensor {names[0]}): the checkpoint holds "
                            "another model than the one configured")


def load_params(source: str, abstract: dict, shardings: dict) -> dict:
  """Checkpoint weights into a parameter dict shaped like `abstract` (a Trainer's), each array
  assembled shard by shard on its `shardings`."""
  mc, st, table = check(source, abstract)
  read = {path: (lambda i, t=t, j=j: t.read(st.get(t.hf.format(i=i)))[j])
          for path, (t, j) in table.items()}
  return assemble(read, mc, abstract, shardings, source)


def assemble(read: dict, mc: ModelConfig, abstract: dict, shardings: dict, source: str) -> dict:
  """Build every parameter with `jax.make_array_from_callback`: each shard reads only its part
  (stacked layers one at a time). Parameters no checkpoint has (the classification head) are
  zeros."""

  def build(path, shape_dtype, shard):
    path = tuple(p.key for p in path)
    if path not in read:
      if path == ("cls_head",):
        return jax.device_put(np.zeros(shape_dtype.shape, shape_dtype.dtype), shard)
      raise CheckpointError(f"checkpoint {source}: nothing maps to parameter {'/'.join(path)}")
    fn, stacked = read[path], path[0] == "blocks"

    def callback(index):
      if stacked:
        layers = range(*index[0].indices(shape_dtype.shape[0]))
        return np.stack([np.asarray(fn(i)[index[1:]], np.float32) for i in layers])
      return np.asarray(fn(None)[index], np.float32)

    want = tuple(shape_dtype.shape)
    layers = min(mc.n_layers, want[0]) if stacked else 0  # n_layers: the first layers
    got = (layers,) + fn(0).shape if stacked else fn(None).shape
    if tuple(got) != want:
      raise CheckpointError(f"checkpoint {source}: {'/'.join(path)} has shape {got}, the model "
                            f"expects {want}")
    return jax.make_array_from_callback(want, shard, callback)

  return jax.tree_util.tree_map_with_path(build, abstract, shardings)


# ---------------------------------------------------------------------------------- export
def export(mc: ModelConfig, params: dict, folder: str, tokenizer_file: str = "") -> None:
  """Write `params` as a Hugging Face safetensors folder (config.json, model.safetensors)."""
  from safetensors.numpy import save_file  # noqa: PLC0415
  config = hf_config(mc)  # first: refuses a model no Hugging Face family runs
  os.makedirs(folder, exist_ok=True)
  p = jax.tree.map(lambda x: np.asarray(jax.device_get(x), np.float32), params)
  tensors = {}
  for t in mapping(mc):
    arrays = [_get(p, path) for path in t.ours]
    for i, name in enumerate(t.names(mc.n_layers)):
      tensors[name] = t.write(*([a[i] for a in arrays] if t.stacked else arrays))
  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
            os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(config, f, indent=1)
  if tokenizer_file:
    import shutil  # noqa: PLC0415
    shutil.copy(tokenizer_file, os.path.join(folder, "tokenizer.json"))


def _get(tree: dict, path: tuple):
  for key in path:
    tree = tree[key]
  return tree


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
