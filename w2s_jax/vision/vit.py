"""ViT (Dosovitskiy et al. 2021) and DINOv2 (Oquab et al. 2023) encoders as frozen feature
extractors in JAX: a params pytree and a jitted apply, loaded from Hugging Face safetensors
(`google/vit-*`, `facebook/dino-*`, `facebook/dinov2-*`) under either naming of their tensors
(the Hub files' `encoder.layer.N.attention.attention.query` or transformers 5's
`layers.N.attention.q_proj`). Parity with transformers' ViTModel and Dinov2Model is tested on
tiny random configs (tests/test_vision.py).

Features: the final layer norm's CLS token (ViTModel's last_hidden_state[:, 0], Dinov2Model's
pooler_output), the linear-probe input of the DINO papers.
"""
import json
import math
import os
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Hub names -> canonical ones (the order matters: attention.output.dense before output.dense).
_RENAMES = ((r"^(vit|dinov2|model)\.", ""), (r"encoder\.layer\.", "layers."),
            (r"attention\.attention\.query", "attention.q_proj"),
            (r"attention\.attention\.key", "attention.k_proj"),
            (r"attention\.attention\.value", "attention.v_proj"),
            (r"attention\.output\.dense", "attention.o_proj"),
            (r"intermediate\.dense", "mlp.fc1"), (r"\.output\.dense", ".mlp.fc2"),
            (r"\.norm1\.", ".layernorm_before."), (r"\.norm2\.", ".layernorm_after."))


class VitConfig(NamedTuple):
  kind: str  # vit | dinov2
  d_model: int
  n_layers: int
  n_heads: int
  d_ff: int
  patch: int
  image_size: int
  eps: float
  layer_scale: bool  # DINOv2's per-channel scales of each residual branch

  @property
  def feature_dim(self) -> int:
    return self.d_model


def config_from_hf(cfg: dict) -> VitConfig:
  """A VitConfig from a Hub config.json (ViTModel or Dinov2Model)."""
  kind = cfg.get("model_type", "vit")
  if kind not in ("vit", "dinov2"):
    raise ValueError(f"model_type {kind!r} is not a ViT or DINOv2 encoder")
  if cfg.get("use_swiglu_ffn"):
    raise ValueError("DINOv2 with a SwiGLU MLP (giant) is not supported")
  if cfg.get("hidden_act", "gelu") != "gelu":
    raise ValueError(f"hidden_act {cfg['hidden_act']!r}: only gelu is supported")
  d = cfg["hidden_size"]
  ff = cfg.get("intermediate_size") or int(d * cfg.get("mlp_ratio", 4))
  return VitConfig(kind, d, cfg["num_hidden_layers"], cfg["num_attention_heads"], ff,
                   cfg["patch_size"], cfg["image_size"],
                   cfg.get("layer_norm_eps", 1e-12 if kind == "vit" else 1e-6), kind == "dinov2")


# Configs of public checkpoints, so that a dry run knows their shapes without the Hub.
KNOWN = {
    "facebook/dinov2-small": VitConfig("dinov2", 384, 12, 6, 1536, 14, 518, 1e-6, True),
    "facebook/dinov2-base": VitConfig("dinov2", 768, 12, 12, 3072, 14, 518, 1e-6, True),
    "facebook/dinov2-large": VitConfig("dinov2", 1024, 24, 16, 4096, 14, 518, 1e-6, True),
    "google/vit-base-patch16-224": VitConfig("vit", 768, 12, 12, 3072, 16, 224, 1e-12, False),
    "google/vit-large-patch16-224": VitConfig("vit", 1024, 24, 16, 4096, 16, 224, 1e-12, False),
}


def abstract_params(cfg: VitConfig) -> dict:
  """The shapes of params_from_tensors' pytree (ShapeDtypeStruct), nothing allocated."""
  s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)  # noqa: E731
  d, f, p = cfg.d_model, cfg.d_ff, cfg.patch
  lin = lambda i, o: {"w": s(i, o), "b": s(o)}  # noqa: E731
  norm = {"scale": s(d), "bias": s(d)}
  layer = {"q_proj": lin(d, d), "k_proj": lin(d, d), "v_proj": lin(d, d), "o_proj": lin(d, d),
           "ln1": norm, "ln2": norm, "fc1": lin(d, f), "fc2": lin(f, d)}
  if cfg.layer_scale:
    layer.update(ls1=s(d), ls2=s(d))
  return {"patch": lin(p * p * 3, d), "cls": s(1, 1, d),
          "pos": s(1, (cfg.image_size // p) ** 2 + 1, d), "final_norm": norm,
          "layers": [layer] * cfg.n_layers}


def canonical(name: str) -> str:
  for pattern, new in _RENAMES:
    name = re.sub(pattern, new, name)
  return name


def params_from_tensors(tensors: dict, cfg: VitConfig) -> dict:
  """The extractor's params from a checkpoint's tensors (either naming); linear weights are
  stored [out, in] there and [in, out] here."""
  t = {canonical(k): np.asarray(v, np.float32) for k, v in tensors.items()}

  def get(name):
    if name not in t:
      raise KeyError(f"checkpoint has no tensor {name!r} (nor its Hub name)")
    return t[name]

  def linear(name):
    return {"w": get(f"{name}.weight").T, "b": get(f"{name}.bias")}

  def norm(name):
    return {"scale": get(f"{name}.weight"), "bias": get(f"{name}.bias")}

  proj = get("embeddings.patch_embeddings.projection.weight")  # [d, 3, p, p]
  out = {"patch": {"w": proj.transpose(2, 3, 1, 0).reshape(-1, cfg.d_model),  # (p, p, 3) rows
                   "b": get("embeddings.patch_embeddings.projection.bias")},
         "cls": get("embeddings.cls_token").reshape(1, 1, -1),
         "pos": get("embeddings.position_embeddings"),
         "final_norm": norm("layernorm"), "layers": []}
  for i in range(cfg.n_layers):
    p = f"layers.{i}."
    layer = {name: linear(p + f"attention.{name}") for name in ("q_proj", "k_proj", "v_proj",
                                                                "o_proj")}
    layer.update(ln1=norm(p + "layernorm_before"), ln2=norm(p + "layernorm_after"),
                 fc1=linear(p + "mlp.fc1"), fc2=linear(p + "mlp.fc2"))
    if cfg.layer_scale:
      layer["ls1"], layer["ls2"] = get(p + "layer_scale1.lambda1"), get(p + "layer_scale2.lambda1")
    out["layers"].append(layer)
  return out


def load(folder: str) -> tuple[VitConfig, dict]:
  """(config, params) of a Hub folder: config.json and model.safetensors."""
  from safetensors.numpy import load_file  # noqa: PLC0415
  with open(os.path.join(folder, "config.json")) as f:
    cfg = config_from_hf(json.load(f))
  path = os.path.join(folder, "model.safetensors")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{folder}: no model.safetensors")
  return cfg, params_from_tensors(load_file(path), cfg)


def _norm(x, p, eps):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / jnp.sqrt(var + eps) * p["scale"] + p["bias"]


def _positions(pos, n_side: int):
  """Position embeddings for an n_side x n_side grid: the checkpoint's, resized (bicubic) when
  the image has another size than the one it was trained on."""
  cls, grid = pos[:, :1], pos[:, 1:]
  side = int(math.isqrt(grid.shape[1]))
  if side == n_side:
    return pos
  grid = jax.image.resize(grid.reshape(1, side, side, -1), (1, n_side, n_side, grid.shape[-1]),
                          "bicubic")
  return jnp.concatenate([cls, grid.reshape(1, n_side * n_side, -1)], 1)


def features(params: dict, images, cfg: VitConfig):
  """images [N, H, W, 3] (normalized as the checkpoint expects) -> [N, d]: the CLS token."""
  n, h, w, c = images.shape
  p = cfg.patch
  x = images.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(n, (h // p) * (w // p), p * p * c) @ params["patch"]["w"] + params["patch"]["b"]
  x = jnp.concatenate([jnp.broadcast_to(params["cls"], (n, 1, cfg.d_model)), x], 1)
  x = x + _positions(params["pos"], h // p)
  dh = cfg.d_model // cfg.n_heads
  heads = lambda v: v.reshape(n, -1, cfg.n_heads, dh)  # noqa: E731
  for layer in params["layers"]:
    y = _norm(x, layer["ln1"], cfg.eps)
    q, k, v = (heads(y @ layer[m]["w"] + layer[m]["b"]) for m in ("q_proj", "k_proj", "v_proj"))
    att = jax.nn.softmax(jnp.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(dh), -1)
    y = jnp.einsum("nhqk,nkhd->nqhd", att, v).reshape(n, -1, cfg.d_model)
    y = y @ layer["o_proj"]["w"] + layer["o_proj"]["b"]
    x = x + (y * layer["ls1"] if cfg.layer_scale else y)
    y = _norm(x, layer["ln2"], cfg.eps)
    y = jax.nn.gelu(y @ layer["fc1"]["w"] + layer["fc1"]["b"], approximate=False)
    y = y @ layer["fc2"]["w"] + layer["fc2"]["b"]
    x = x + (y * layer["ls2"] if cfg.layer_scale else y)
  return _norm(x, params["final_norm"], cfg.eps)[:, 0]
