"""One Flax NNX decoder-only transformer: GPT-2 style and Llama/Qwen2 style by config.

Every parameter carries `logical_axes` metadata (names such as "embed", "mlp", "heads"); the
sharding module maps them to mesh axes. Layers are stacked on a leading "layers" axis and run with
`nnx.scan`, so compile time does not grow with depth. Sequences are right-padded: causal attention
keeps pad tokens out of every real position, and heads read the hidden state at `lengths - 1`.
"""
import jax
import jax.numpy as jnp
from flax import nnx

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
  def __init__(self, cfg: ModelConfig):
    self.kind, self.eps = cfg.norm, cfg.norm_eps
    self.scale = nnx.Param(jnp.ones((cfg.d_model,), jnp.float32), logical_axes=("norm",))
    if cfg.norm == "layernorm":
      self.bias = _zeros((cfg.d_model,), ("norm",))

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    if self.kind == "layernorm":
      x32 = x32 - x32.mean(-1, keepdims=True)
      y = x32 * jax.lax.rsqrt((x32 * x32).mean(-1, keepdims=True) + self.eps)
      y = y * self.scale[...] + self.bias[...]
    else:
      y = x32 * jax.lax.rsqrt((x32 * x32).mean(-1, keepdims=True) + self.eps) * self.scale[...]
    return y.astype(x.dtype)


def rope(x, positions, theta):
  """Rotary embedding, half-rotation layout (the Hugging Face Llama convention). x: [B,L,H,D]."""
  half = x.shape[-1] // 2
  freqs = 1.0 / theta ** (jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions[:, :, None].astype(jnp.float32) * freqs  # [B, L, half]
  cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]
  x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


class Block(nnx.Module):
  def __init__(self, cfg: ModelConfig, *, attention: str = "xla", rngs: nnx.Rngs):
    d, h, k, hd, f = cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.dim_head, cfg.d_ff
    w = nnx.initializers.normal(0.02)
    self.cfg, self.attention = cfg, attention
    self.norm1, self.norm2 = Norm(cfg), Norm(cfg)
    self.wq = _param(rngs, w, (d, h, hd), ("embed", "heads", "head_dim"))
    self.wk = _param(rngs, w, (d, k, hd), ("embed", "kv_heads", "head_dim"))
    self.wv = _param(rngs, w, (d, k, hd), ("embed", "kv_heads", "head_dim"))
    self.wo = _param(rngs, w, (h, hd, d), ("heads", "head_dim", "embed"))
    if cfg.qkv_bias:
      self.bq = _zeros((h, hd), ("heads", "head_dim"))
      self.bk = _zeros((k, hd), ("kv_heads", "head_dim"))
      self.bv = _zeros((k, hd), ("kv_heads", "head_dim"))
    self.w_in = _param(rngs, w, (d, f), ("embed", "mlp"))
    if cfg.mlp == "swiglu":
      self.w_gate = _param(rngs, w, (d, f), ("embed", "mlp"))
    self.w_out = _param(rngs, w, (f, d), ("mlp", "embed"))
    if cfg.out_bias:
      self.bo = _zeros((d,), ("norm",))
      self.b_in = _zeros((f,), ("mlp",))
      self.b_out = _zeros((d,), ("norm",))

  def _qkv(self, x, positions):
    cfg, dt = self.cfg, x.dtype
    p = lambda v: v[...].astype(dt)  # noqa: E731  (compute dtype; params stay fp32)
    y = self.norm1(x)
    q = jnp.einsum("bld,dhk->blhk", y, p(self.wq))
    k = jnp.einsum("bld,dhk->blhk", y, p(self.wk))
    v = jnp.einsum("bld,dhk->blhk", y, p(self.wv))
    if cfg.qkv_bias:
      q, k, v = q + p(self.bq), k + p(self.bk), v + p(self.bv)
    if cfg.pos_emb == "rope":
      q, k = rope(q, positions, cfg.rope_theta), rope(k, positions, cfg.rope_theta)
    return q, k, v

  def __call__(self, x, positions):
    return self.prefill(x, positions)[0]

  def prefill(self, x, positions):
    """The block on a whole (causal) sequence; also returns its keys and values."""
    q, k, v = self._qkv(x, positions)
    w = self.cfg.sliding_window
    attn = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=self.attention,
                                        local_window_size=(w - 1, 0) if w else None)
    return self._finish(x, attn), (k, v)

  def decode(self, x, positions, cache):
    """One new token per row (x [B, 1, d] at `positions` [B, 1]) against the KV cache
    ([B, T, K, hd] each): writes its key and value at its position, attends to positions <= it."""
    q, k, v = self._qkv(x, positions)
    rows, at = jnp.arange(x.shape[0]), positions[:, 0]
    ck, cv = cache[0].at[rows, at].set(k[:, 0]), cache[1].at[rows, at].set(v[:, 0])
    idx = jnp.arange(ck.shape[1])[None, :]
    mask = idx <= positions  # [B, T]
    if self.cfg.sliding_window:
      mask &= idx > positions - self.cfg.sliding_window
    attn = jax.nn.dot_product_attention(q, ck, cv, mask=mask[:, None, None, :])
    return self._finish(x, attn), (ck, cv)

  def _finish(self, x, attn):
    cfg, dt = self.cfg, x.dtype
    p = lambda v: v[...].astype(dt)  # noqa: E731
    out = jnp.einsum("blhk,hkd->bld", attn, p(self.wo))
    if cfg.out_bias:
      out = out + p(self.bo)
    x = x + out
    y = self.norm2(x)
    hidden = y @ p(self.w_in)
    if cfg.out_bias:
      hidden = hidden + p(self.b_in)
    if cfg.mlp == "swiglu":
      hidden = jax.nn.silu(y @ p(self.w_gate)) * hidden
    else:
      hidden = jax.nn.gelu(hidden, approximate=True)  # GPT-2's gelu_new
    out = hidden @ p(self.w_out)
    if cfg.out_bias:
      out = out + p(self.b_out)
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
    if self.cfg.pos_emb == "learned":
      x = x + self.pos_embed[...].astype(self.dtype)[positions]
    return x

  def prefill(self, tokens, lengths, cache_len: int):
    """Greedy decoding, first call: the next-token logits [B, V] after each right-padded prompt
    and a KV cache of `cache_len` positions per layer (pad positions are overwritten before
    any query can see them)."""
    b, length = tokens.shape[:2]
    positions = jnp.broadcast_to(jnp.arange(length)[None], (b, length))
    x, (k, v) = nnx.scan(lambda x, block: block.prefill(x, positions), in_axes=(nnx.Carry, 0),
                         out_axes=(nnx.Carry, 0))(self._embed(tokens, positions), self.blocks)
    pad = ((0, 0), (0, 0), (0, cache_len - length), (0, 0), (0, 0))
    h = self.final_norm(x)[jnp.arange(b), lengths - 1]
    return self.lm_logits(h), (jnp.pad(k, pad), jnp.pad(v, pad))

  def decode_step(self, token, position, cache):
    """Next-token logits [B, V] after `token` [B] at `position` [B]; the updated cache."""
    pos = position[:, None]
    x, cache = nnx.scan(lambda x, block, kv: block.decode(x, pos, kv),
                        in_axes=(nnx.Carry, 0, 0), out_axes=(nnx.Carry, 0))(
                            self._embed(token[:, None], pos), self.blocks, cache)
    return self.lm_logits(self.final_norm(x)[:, 0]), cache

  def hidden(self, tokens, act_sharding=None):
    """Final-normed hidden states [B, L, d] in the compute dtype."""
    b, length = tokens.shape[:2]
    positions = jnp.broadcast_to(jnp.arange(length)[None], (b, length))
    x = self._embed(tokens, positions)
    constrain = (lambda y: jax.lax.with_sharding_constraint(y, act_sharding)) if act_sharding \
        else (lambda y: y)

    def body(x, block):
      return constrain(block(x, positions))

    policy = REMAT_POLICIES[self.remat]
    if self.remat != "none":
      body = nnx.remat(body, policy=policy)
    x = nnx.scan(body, in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)(constrain(x), self.blocks)
    return self.final_norm(x)

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
    """Next-token logits [B, L, V] (fp32) from `hidden`."""
    w = self.embed[...].T if self.cfg.tied_embeddings else self.lm_head[...]
    return hidden.astype(jnp.float32) @ w.astype(jnp.float32)
