"""Rotary position embeddings: per-layer inverse frequencies (with Hugging Face's rope scalings)
and their application.

The frequencies are constants of the config, computed here in numpy once per trace and scanned
alongside the stacked layers: layers may differ (Gemma 3's local layers use their own base and
no scaling), and the scanned body has no per-layer Python branch.
"""
import math

import jax.numpy as jnp
import numpy as np


def inv_freq(cfg, theta: float, rope_type: str) -> np.ndarray:
  """[dim_head / 2] inverse frequencies of one layer (transformers' modeling_rope_utils)."""
  dim = cfg.dim_head
  base = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
  factor = cfg.rope_factor
  if rope_type == "default":
    return base
  if rope_type == "linear":
    return base / factor
  if rope_type == "llama3":  # low frequencies slowed by `factor`, high ones kept, a ramp between
    old = cfg.rope_original_max_len
    low, high = cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
    wavelen = 2 * math.pi / base
    scaled = np.where(wavelen > old / low, base / factor, base)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old / high) & (wavelen <= old / low)
    return np.where(medium, smoothed, scaled)
  if rope_type == "yarn":  # interpolated below the correction range, extrapolated above it
    def dim_of(rotations):
      return dim * math.log(cfg.rope_original_max_len / (rotations * 2 * math.pi)) / (
          2 * math.log(theta))
    lo = max(math.floor(dim_of(cfg.rope_beta_fast)), 0)
    hi = min(math.ceil(dim_of(cfg.rope_beta_slow)), dim - 1)
    hi = hi + 0.001 if lo == hi else hi
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
    extrapolation = 1 - ramp
    return base / factor * (1 - extrapolation) + base * extrapolation
  raise ValueError(f"rope_type {rope_type!r} is not supported (default, linear, llama3, yarn)")


def layer_tables(cfg) -> tuple:
  """(inv_freq [n_layers, dim_head / 2] float32, scale [n_layers] float32): each layer's
  frequencies and the factor on its cos and sin (yarn's attention factor, else 1)."""
  windows = cfg.layer_windows()
  freqs, scales = [], []
  for w in windows:
    local = cfg.rope_local_theta and w  # Gemma 3: local layers take their own, unscaled rope
    if local:
      freqs.append(inv_freq(cfg, cfg.rope_local_theta, "default"))
      scales.append(1.0)
    else:
      freqs.append(inv_freq(cfg, cfg.rope_theta, cfg.rope_type))
      scales.append(cfg.rope_attention_factor if cfg.rope_type == "yarn" else 1.0)
  return np.asarray(freqs, np.float32), np.asarray(scales, np.float32)


def apply(x, positions, freqs, scale=None):
  """Rotary embedding, half-rotation layout (the Hugging Face Llama convention).
  x: [B, L, H, D]; positions [B, L]; freqs [D / 2] (this layer's); scale: None or a scalar."""
  half = x.shape[-1] // 2
  angles = positions[:, :, None].astype(jnp.float32) * freqs  # [B, L, half]
  cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]
  if scale is not None:
    cos, sin = cos * scale, sin * scale
  x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)
