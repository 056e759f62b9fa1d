"""One Flax NNX decoder-only transformer: GPT-2, Llama/Qwen and Gemma styles by config.

Every parameter carries `logical_axes` metadata (names such as "embed", "mlp", "heads"); the
sharding module maps them to mesh axes. Layers are stacked on a leading "layers" axis and run with
`nnx.scan`, so compile time does not grow with depth; what differs between layers (rope
frequencies, a sliding window or none) is scanned alongside them as per-layer arrays
(`layer_arrays`). Sequences are right-padded: causal attention keeps pad tokens out of every real
position, and heads read the hidden state at `lengths - 1`.
"""
import math

import jax
import jax.numpy as jnp
from flax import nnx

from w2s_jax.models import rope
from w2s_jax.models.sizes import ModelConfig

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def _param(rngs, init, shape, axes):
  return nnx.Param(init(rngs.params(), shape, jnp.float32), logical_axes=axes)


def _zeros(shape, axes):
  return nnx.Param(jnp.zeros(shape, jnp.float32), logical_axes=axes)


class Norm(nnx.Module):
  """LayerNorm, RMSNorm or Gemma's RMSNorm (scale 1 + w) over the last axis (`dim` wide)."""

  def __init__(self, cfg: ModelConfig, dim: int = 0):
    dim = dim or cfg.d_model
    self.kind, self.eps = cfg.norm, cfg.norm_eps
    init = jnp.zeros if cfg.norm == "gemma_rmsnorm" else jnp.ones  # the identity at init
    self.scale = nnx.Param(init((dim,), jnp.float32), logical_axes=("norm",))
    if cfg.norm == "layernorm":
      self.bias = _zeros((dim,), ("norm",))

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    if self.kind == "layernorm":
      x32 = x32 - x32.mean(-1, keepdims=True)
      y = x32 * jax.lax.rsqrt((x32 * x32).mean(-1, keepdims=True) + self.eps)
      y = y * self.scale[...] + self.bias[...]
    else:
      scale = self.scale[...] + 1.0 if self.kind == "gemma_rmsnorm" else self.scale[...]
      y = x32 * jax.lax.rsqrt((x32 * x32).mean(-1, keepdims=True) + self.eps) * scale
    return y.astype(x.dtype)


def layer_arrays(cfg: ModelConfig) -> dict:
  """Per-layer constants scanned with the stacked blocks: rope frequencies ("freqs" [L, hd/2],
  "rope_scale" [L] for yarn) and, when layers differ in it, the sliding window ("window" [L],
  0: global). Layers that all share a window keep the static window of the config."""
  out = {}
  if cfg.pos_emb == "rope":
    freqs, scale = rope.layer_tables(cfg)
    out["freqs"] = jnp.asarray(freqs)
    if cfg.rope_type == "yarn":
      out["rope_scale"] = jnp.asarray(scale)
  windows = cfg.layer_windows()
  if len(set(windows)) > 1:
    out["window"] = jnp.asarray(windows, jnp.int32)
  return out


def band_mask(q_pos, k_pos, window):
  """Causal mask (key position <= query position) within `window` (0: unlimited; a Python int
  or a traced per-layer value): keys at q - w < k <= q."""
  mask = k_pos <= q_pos
  if isinstance(window, int):
    return mask & (k_pos > q_pos - window) if window else mask
  return mask & ((window == 0) | (k_pos > q_pos - window))


def softcapped_attention(q, k, v, mask, scale, cap):
  """Gemma 2's attention: scores -> cap * tanh(scores / cap) before the mask and softmax.
  q [B, L, H, D], k/v [B, T, K, D] (H a multiple of K), mask broadcastable to [B, 1, L, T]."""
  b, length, h, d = q.shape
  kv = k.shape[2]
  qg = q.reshape(b, length, kv, h // kv, d)
  s = jnp.einsum("blkgd,btkd->bkglt", qg, k).astype(jnp.float32) * scale
  s = cap * jnp.tanh(s / cap)
  s = jnp.where(mask[:, :, None], s, jnp.finfo(jnp.float32).min)
  p = jax.nn.softmax(s, axis=-1).astype(v.dtype)
  return jnp.einsum("bkglt,btkd->blkgd", p, v).reshape(b, length, h, d)


class Block(nnx.Module):
  def __init__(self, cfg: ModelConfig, *, attention: str = "xla", rngs: nnx.Rngs):
    d, h, k, hd, f = cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.dim_head, cfg.d_ff
    w = nnx.initializers.normal(0.02)
    self.cfg, self.attention = cfg, attention
    if cfg.attn_softcap and attention != "xla":
      raise ValueError(f"attention {attention!r}: soft-capped attention (Gemma 2) runs on XLA only")
    self.norm1, self.norm2 = Norm(cfg), Norm(cfg)
    if cfg.post_norms:  # Gemma: the attention and MLP outputs are normed before the residual
      self.norm_attn_out, self.norm_mlp_out = Norm(cfg), Norm(cfg)
    if cfg.qk_norm:
      self.q_norm, self.k_norm = Norm(cfg, hd), Norm(cfg, hd)
    self.wq = _param(rngs, w, (d, h, hd), ("embed", "heads", "head_dim"))
    self.wk = _param(rngs, w, (d, k, hd), ("embed", "kv_heads", "head_dim"))
    self.wv = _param(rngs, w, (d, k, hd), ("embed", "kv_heads", "head_dim"))
    self.wo = _param(rngs, w, (h, hd, d), ("heads", "head_dim", "embed"))
    if cfg.qkv_bias:
      self.bq = _zeros((h, hd), ("heads", "head_dim"))
      self.bk = _zeros((k, hd), ("kv_heads", "head_dim"))
      self.bv = _zeros((k, hd), ("kv_heads", "head_dim"))
    self.w_in = _param(rngs, w, (d, f), ("embed", "mlp"))
    if cfg.mlp != "gelu":  # swiglu, geglu
      self.w_gate = _param(rngs, w, (d, f), ("embed", "mlp"))
    self.w_out = _param(rngs, w, (f, d), ("mlp", "embed"))
    if cfg.out_bias:
      self.bo = _zeros((d,), ("norm",))
      self.b_in = _zeros((f,), ("mlp",))
      self.b_out = _zeros((d,), ("norm",))

  def _qkv(self, x, positions, layer):
    cfg, dt = self.cfg, x.dtype
    p = lambda v: v[...].astype(dt)  # noqa: E731  (compute dtype; params stay fp32)
    y = self.norm1(x)
    q = jnp.einsum("bld,dhk->blhk", y, p(self.wq))
    k = jnp.einsum("bld,dhk->blhk", y, p(self.wk))
    v = jnp.einsum("bld,dhk->blhk", y, p(self.wv))
    if cfg.qkv_bias:
      q, k, v = q + p(self.bq), k + p(self.bk), v + p(self.bv)
    if cfg.qk_norm:
      q, k = self.q_norm(q), self.k_norm(k)
    if cfg.pos_emb == "rope":
      scale = layer.get("rope_scale")
      q = rope.apply(q, positions, layer["freqs"], scale)
      k = rope.apply(k, positions, layer["freqs"], scale)
    return q, k, v

  def _window(self, layer):
    """This layer's sliding window: a traced value when layers differ, else the static one."""
    return layer["window"] if "window" in layer else self.cfg.layer_windows()[0]

  def _scale(self):
    """The scores' scale: None is 1 / sqrt(head_dim); Gemma sets query_pre_attn_scalar."""
    s = self.cfg.query_pre_attn_scalar
    return s ** -0.5 if s else None

  def _attend(self, q, k, v, mask, implementation):
    cfg = self.cfg
    if cfg.attn_softcap:
      return softcapped_attention(q, k, v, mask, self._scale() or q.shape[-1] ** -0.5,
                                  cfg.attn_softcap)
    return jax.nn.dot_product_attention(q, k, v, mask=mask, scale=self._scale(),
                                        implementation=implementation)

  def __call__(self, x, positions, layer):
    return self.prefill(x, positions, layer)[0]

  def prefill(self, x, positions, layer):
    """The block on a whole (causal) sequence; also returns its keys and values. `layer`: this
    layer's slice of `layer_arrays`."""
    q, k, v = self._qkv(x, positions, layer)
    w, cfg = self._window(layer), self.cfg
    if isinstance(w, int) and not cfg.attn_softcap:
      # One window for every layer (GPT-2, Llama, Qwen, Mistral): the kernel builds the band.
      attn = jax.nn.dot_product_attention(q, k, v, is_causal=True, scale=self._scale(),
                                          implementation=self.attention,
                                          local_window_size=(w - 1, 0) if w else None)
    else:
      i = jnp.arange(x.shape[1])
      attn = self._attend(q, k, v, band_mask(i[:, None], i[None, :], w)[None, None],
                          self.attention)
    return self._finish(x, attn), (k, v)

  def decode(self, x, positions, cache, layer):
    """One new token per row (x [B, 1, d] at `positions` [B, 1]) against the KV cache
    ([B, T, K, hd] each): writes its key and value at its position, attends to positions <= it
    (within the layer's window)."""
    q, k, v = self._qkv(x, positions, layer)
    rows, at = jnp.arange(x.shape[0]), positions[:, 0]
    ck, cv = cache[0].at[rows, at].set(k[:, 0]), cache[1].at[rows, at].set(v[:, 0])
    mask = band_mask(positions, jnp.arange(ck.shape[1])[None, :], self._window(layer))  # [B, T]
    attn = self._attend(q, ck, cv, mask[:, None, None, :], None)
    return self._finish(x, attn), (ck, cv)

  def _finish(self, x, attn):
    cfg, dt = self.cfg, x.dtype
    p = lambda v: v[...].astype(dt)  # noqa: E731
    out = jnp.einsum("blhk,hkd->bld", attn, p(self.wo))
    if cfg.out_bias:
      out = out + p(self.bo)
    if cfg.post_norms:
      out = self.norm_attn_out(out)
    x = x + out
    y = self.norm2(x)
    hidden = y @ p(self.w_in)
    if cfg.out_bias:
      hidden = hidden + p(self.b_in)
    if cfg.mlp == "swiglu":
      hidden = jax.nn.silu(y @ p(self.w_gate)) * hidden
    elif cfg.mlp == "geglu":  # Gemma's gelu_pytorch_tanh on the gate
      hidden = jax.nn.gelu(y @ p(self.w_gate), approximate=True) * hidden
    else:
      hidden = jax.nn.gelu(hidden, approximate=True)  # GPT-2's gelu_new
    out = hidden @ p(self.w_out)
    if cfg.out_bias:
      out = out + p(self.b_out)
    if cfg.post_norms:
      out = self.norm_mlp_out(out)
    return x + out


class Transformer(nnx.Module):
  """Decoder-only transformer with a classification head and a language-modelling head."""

  def __init__(self, cfg: ModelConfig, num_classes: int = 2, *, dtype=jnp.float32,
               remat: str = "none", attention: str = "xla", rngs: nnx.Rngs):
    """`attention`: the kernel of whole-sequence attention, "xla" (any backend) or "cudnn"
    (cuDNN flash attention: NVIDIA GPUs, bfloat16). Decoding against the KV cache uses XLA."""
    self.cfg, self.dtype, self.remat = cfg, dtype, remat
    self.embed = _param(rngs, nnx.initializers.normal(0.02), (cfg.vocab_size, cfg.d_model),
                        ("vocab", "embed"))
    if cfg.pos_emb == "learned":
      self.pos_embed = _param(rngs, nnx.initializers.normal(0.01), (cfg.max_len, cfg.d_model),
                              ("pos", "embed"))

    @nnx.split_rngs(splits=cfg.n_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs):
      return Block(cfg, attention=attention, rngs=rngs)

    self.blocks = make_blocks(rngs)
    for _, var in nnx.iter_graph(self.blocks):
      if isinstance(var, nnx.Param):
        var.set_metadata(logical_axes=("layers",) + var.get_metadata()["logical_axes"])
    self.final_norm = Norm(cfg)
    if not cfg.tied_embeddings:
      self.lm_head = _param(rngs, nnx.initializers.normal(0.02), (cfg.d_model, cfg.vocab_size),
                            ("embed", "vocab"))
    # The reference recipe: no bias, zero-initialised, so every example starts at p = 1/C.
    # num_classes=0: no classification head; the answer is the next token (language-model head).
    self.num_classes = num_classes
    if num_classes:
      self.cls_head = _zeros((cfg.d_model, num_classes), ("embed", "classes"))

  def _embed(self, tokens, positions):
    """tokens [B, L] ids, or [B, L, K]: a position embedded as the sum of its K ids' embeddings
    (id 0 adds nothing), e.g. a chess rank as the sum of its pieces."""
    x = self.embed[...].astype(self.dtype)[tokens]
    if tokens.ndim == 3:
      x = jnp.sum(x * (tokens > 0)[..., None].astype(x.dtype), axis=2)
    if self.cfg.embed_scale:  # Gemma: sqrt(d) rounded to the compute dtype, as transformers does
      x = x * jnp.asarray(math.sqrt(self.cfg.d_model), self.dtype)
    if self.cfg.pos_emb == "learned":
      x = x + self.pos_embed[...].astype(self.dtype)[positions]
    return x

  def prefill(self, tokens, lengths, cache_len: int):
    """Greedy decoding, first call: the next-token logits [B, V] after each right-padded prompt
    and a KV cache of `cache_len` positions per layer (pad positions are overwritten before
    any query can see them)."""
    b, length = tokens.shape[:2]
    positions = jnp.broadcast_to(jnp.arange(length)[None], (b, length))
    x, (k, v) = nnx.scan(lambda x, block, layer: block.prefill(x, positions, layer),
                         in_axes=(nnx.Carry, 0, 0), out_axes=(nnx.Carry, 0))(
                             self._embed(tokens, positions), self.blocks, layer_arrays(self.cfg))
    pad = ((0, 0), (0, 0), (0, cache_len - length), (0, 0), (0, 0))
    h = self.final_norm(x)[jnp.arange(b), lengths - 1]
    return self.lm_logits(h), (jnp.pad(k, pad), jnp.pad(v, pad))

  def decode_step(self, token, position, cache):
    """Next-token logits [B, V] after `token` [B] at `position` [B]; the updated cache."""
    pos = position[:, None]
    x, cache = nnx.scan(lambda x, block, kv, layer: block.decode(x, pos, kv, layer),
                        in_axes=(nnx.Carry, 0, 0, 0), out_axes=(nnx.Carry, 0))(
                            self._embed(token[:, None], pos), self.blocks, cache,
                            layer_arrays(self.cfg))
    return self.lm_logits(self.final_norm(x)[:, 0]), cache

  def hidden(self, tokens, act_sharding=None):
    """Final-normed hidden states [B, L, d] in the compute dtype."""
    b, length = tokens.shape[:2]
    positions = jnp.broadcast_to(jnp.arange(length)[None], (b, length))
    x = self._embed(tokens, positions)
    constrain = (lambda y: jax.lax.with_sharding_constraint(y, act_sharding)) if act_sharding \
        else (lambda y: y)

    def body(x, block, layer):
      return constrain(block(x, positions, layer))

    policy = REMAT_POLICIES[self.remat]
    if self.remat != "none":
      body = nnx.remat(body, policy=policy)
    x = nnx.scan(body, in_axes=(nnx.Carry, 0, 0), out_axes=nnx.Carry)(
        constrain(x), self.blocks, layer_arrays(self.cfg))
    return self.final_norm(x)

  def features_by_layer(self, tokens, lengths, act_sharding=None):
    """The last real token's final-normed hidden state after every layer, fp32 [B, L, d]:
    entry k - 1 is what the model truncated to its first k layers reads (one forward pass
    serves a whole depth ladder of probes)."""
    b, length = tokens.shape[:2]
    positions = jnp.broadcast_to(jnp.arange(length)[None], (b, length))
    constrain = (lambda y: jax.lax.with_sharding_constraint(y, act_sharding)) if act_sharding \
        else (lambda y: y)

    def body(x, block, layer):
      x = constrain(block(x, positions, layer))
      return x, x[jnp.arange(b), lengths - 1]

    _, last = nnx.scan(body, in_axes=(nnx.Carry, 0, 0), out_axes=(nnx.Carry, 0))(
        constrain(self._embed(tokens, positions)), self.blocks, layer_arrays(self.cfg))
    return self.final_norm(jnp.swapaxes(last, 0, 1)).astype(jnp.float32)

  def features(self, tokens, lengths, act_sharding=None):
    """Hidden state of the last real token of each sequence, fp32 [B, d]."""
    h = self.hidden(tokens, act_sharding)
    return h[jnp.arange(h.shape[0]), lengths - 1].astype(jnp.float32)

  def classify(self, features):
    if not self.num_classes:
      return self.lm_logits(features)
    return features @ self.cls_head[...]

  def __call__(self, tokens, lengths, act_sharding=None):
    """Class logits [B, C] (fp32), read at the last real token given explicit lengths; with
    num_classes=0, the next token's logits [B, V] there (a one-token answer)."""
    return self.classify(self.features(tokens, lengths, act_sharding))

  def lm_logits(self, hidden):
    """Next-token logits [B, L, V] (fp32) from `hidden` (soft-capped for Gemma 2)."""
    w = self.embed[...].T if self.cfg.tied_embeddings else self.lm_head[...]
    logits = hidden.astype(jnp.float32) @ w.astype(jnp.float32)
    if self.cfg.final_softcap:
      logits = self.cfg.final_softcap * jnp.tanh(logits / self.cfg.final_softcap)
    return logits
