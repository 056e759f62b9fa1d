"""One Flax NNX decoder-only transformer: GPT-2, Llama/Qwen and Gemma styles by config.

Every parameter carries `logical_axes` metadata (names such as "embed", "mlp", "heads"); the
sharding module maps them to mesh axes. Layers are stacked on a leading "layers" axis and run with
`nnx.scan`, so compile time does not grow with depth; what differs between layers (rope
frequencies, a sliding window or none) is scanned alongside them as per-layer arrays
(`layer_arrays`). Sequences are right-padded: causal attention keeps pad tokens out of every real
position, and heads read the hidden state at `lengths - 1`.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
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


def _heads_major(x, kv: int):
  """[B, L, H, D] queries (or their gradient) -> [B, K, G, L, D] for K key heads (G = H / K
  query heads each), or [B, H, L, D] when G = 1 (a size-1 axis there made XLA CPU copy the
  scores through a transposing layout); and the einsum letters of its leading axes."""
  b, length, h, d = x.shape
  if h == kv:
    return jnp.swapaxes(x, 1, 2), "bk"
  return x.reshape(b, length, kv, h // kv, d).transpose(0, 2, 3, 1, 4), "bkg"


def _ungrouped(t, shape):
  """_heads_major's layout back to [B, L, H, D]."""
  if t.ndim == 4:
    return jnp.swapaxes(t, 1, 2)
  return t.transpose(0, 3, 1, 2, 4).reshape(shape)


def _masked_attention_fwd(q, k, v, mask, scale):
  # Heads-major, so that every einsum is a plain batched matmul over (B, K) that reads its
  # large [L, T] operand in the layout it is stored in.
  (qt, g), kt, vt = _heads_major(q, k.shape[2]), jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)
  s = jnp.einsum(f"{g}ld,bktd->{g}lt", qt, kt, preferred_element_type=jnp.float32) * scale
  s = jnp.where(mask, s, jnp.finfo(jnp.float32).min)
  p = jax.nn.softmax(s, axis=-1)
  o = jnp.einsum(f"{g}lt,bktd->{g}ld", p.astype(v.dtype), vt)
  return _ungrouped(o, q.shape), (qt, kt, vt, p, o, mask)  # P in fp32, as jax's backward has it


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def masked_attention(q, k, v, mask, scale):
  """softmax(q k^T * scale, masked) v, as jax.nn.dot_product_attention(implementation="xla")
  computes it (fp32 scores and softmax; q [B, L, H, D], k/v [B, T, K, D], mask [L, T] bool,
  every row with a True), with a hand-written backward pass. Why: on XLA CPU the library
  kernel's autodiff (vmapped over query groups, softmax differentiated as exp / sum) ran the
  backward over the [B, H, L, T] scores in ~9 transposing elementwise passes, and its
  fwd+bwd took 1.6-2.1x PyTorch's SDPA (one thread); here the backward is FlashAttention's
  dS = P * (dP - rowsum(dO * O)) and each matmul reads its [L, T] operand as stored, the
  transposes falling on the small [L, D] tensors (measured: BUILD_NOTES.md, "Speed bookkeeping")."""
  return _masked_attention_fwd(q, k, v, mask, scale)[0]


def _masked_attention_bwd(scale, res, g_out):
  qt, kt, vt, p, o, mask = res
  gt, g = _heads_major(g_out, kt.shape[1])  # like o
  f32 = jnp.float32
  # Matmuls accumulate and the scale applies in fp32; results round to the input dtype once.
  dvt = jnp.einsum(f"{g}ld,{g}lt->bkdt", gt, p.astype(gt.dtype), preferred_element_type=f32)
  dp = jnp.einsum(f"{g}ld,bktd->{g}lt", gt, vt, preferred_element_type=f32)
  if gt.dtype == f32:  # rowsum(dP * P) = rowsum(dO * O): the [L, D] side is cheaper
    delta = jnp.sum(gt * o, -1, keepdims=True)
  else:  # O is rounded: the exact rowsum over the fp32 P
    delta = jnp.sum(dp * p, -1, keepdims=True)
  ds = p * (dp - delta)  # fp32 (bf16 inputs too); masked positions: p = 0, so ds = 0
  dq = jnp.einsum(f"{g}lt,bktd->{g}ld", ds, kt.astype(f32)) * scale
  dkt = jnp.einsum(f"{g}ld,{g}lt->bkdt", qt.astype(f32), ds) * scale
  back = lambda t: t.transpose(0, 3, 1, 2).astype(kt.dtype)  # noqa: E731  [B,K,D,T] -> [B,T,K,D]
  return _ungrouped(dq, g_out.shape).astype(qt.dtype), back(dkt), back(dvt), None


masked_attention.defvjp(lambda q, k, v, mask, scale: _masked_attention_fwd(q, k, v, mask, scale),
                        _masked_attention_bwd)


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


def project(y, w, n_in: int, rows: bool = False):
  """y [B, L, *in] times w [*in, *out] (its first n_in axes contracted) -> [B, L, *out].
  `rows`: as one 2-D [B * L, in] x [in, out] matmul. Why: XLA CPU then lays out the weight
  gradient's matmul without transposing activations; differentiating the 3-D form, it copied
  dH ([B * L, d_ff]) through a transposing fusion and ran dW as a transposed-operand Eigen dot
  (alone, a GELU MLP's fwd+bwd ran 2.6x and a SwiGLU one's 1.2x faster as rows; whole train
  steps 1-9%: BUILD_NOTES.md)."""
  if not rows:
    return jnp.tensordot(y, w, n_in)
  lead, k = y.shape[:y.ndim - n_in], math.prod(w.shape[:n_in])
  return (y.reshape(-1, k) @ w.reshape(k, -1)).reshape(*lead, *w.shape[n_in:])


class Block(nnx.Module):
  def __init__(self, cfg: ModelConfig, *, attention: str = "xla", rows: bool = False,
               rngs: nnx.Rngs):
    """`attention`: see Transformer; `rows`: its projections as 2-D matmuls (`project`)."""
    d, h, k, hd, f = cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.dim_head, cfg.d_ff
    w = nnx.initializers.normal(0.02)
    self.cfg, self.attention, self.rows = cfg, attention, rows
    if cfg.attn_softcap and attention == "cudnn":
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
    q, k, v = (project(y, p(w), 1, self.rows) for w in (self.wq, self.wk, self.wv))
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
    if not cfg.causal and self.attention == "masked":  # a board encoder: no mask (never padded)
      everything = jnp.ones((x.shape[1], x.shape[1]), bool)
      attn = masked_attention(q, k, v, everything, self._scale() or q.shape[-1] ** -0.5)
    elif not cfg.causal:
      attn = jax.nn.dot_product_attention(q, k, v, scale=self._scale(),
                                          implementation=self.attention)
    elif self.attention == "masked" and not cfg.attn_softcap:
      i = jnp.arange(x.shape[1])
      attn = masked_attention(q, k, v, band_mask(i[:, None], i[None, :], w),
                              self._scale() or q.shape[-1] ** -0.5)
    elif isinstance(w, int) and not cfg.attn_softcap:
      # One window for every layer (GPT-2, Llama, Qwen, Mistral): the kernel builds the band.
      attn = jax.nn.dot_product_attention(q, k, v, is_causal=True, scale=self._scale(),
                                          implementation=self.attention,
                                          local_window_size=(w - 1, 0) if w else None)
    else:
      i = jnp.arange(x.shape[1])
      attn = self._attend(q, k, v, band_mask(i[:, None], i[None, :], w)[None, None],
                          "xla" if self.attention == "masked" else self.attention)
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
    mm = lambda y, w, n_in=1: project(y, p(w), n_in, self.rows)  # noqa: E731
    out = mm(attn, self.wo, 2)
    if cfg.out_bias:
      out = out + p(self.bo)
    if cfg.post_norms:
      out = self.norm_attn_out(out)
    x = x + out
    y = self.norm2(x)
    hidden = mm(y, self.w_in)
    if cfg.out_bias:
      hidden = hidden + p(self.b_in)
    if cfg.mlp == "swiglu":
      hidden = jax.nn.silu(mm(y, self.w_gate)) * hidden
    elif cfg.mlp == "geglu":  # Gemma's gelu_pytorch_tanh on the gate
      hidden = jax.nn.gelu(mm(y, self.w_gate), approximate=True) * hidden
    else:
      hidden = jax.nn.gelu(hidden, approximate=True)  # GPT-2's gelu_new
    out = mm(hidden, self.w_out)
    if cfg.out_bias:
      out = out + p(self.b_out)
    if cfg.post_norms:
      out = self.norm_mlp_out(out)
    return x + out


class Transformer(nnx.Module):
  """Decoder-only transformer with a classification head and a language-modelling head."""

  def __init__(self, cfg: ModelConfig, num_classes: int = 2, *, dtype=jnp.float32,
               remat: str = "none", attention: str = "xla", scan_layers: bool = True,
               rows: bool = False, move_geometry: tuple | None = None, rngs: nnx.Rngs):
    """`attention`: the kernel of whole-sequence attention, "xla" (jax's XLA kernel, any
    backend), "masked" (`masked_attention`: XLA with a hand-written backward, faster on XLA
    CPU) or "cudnn" (cuDNN flash attention: NVIDIA GPUs, bfloat16). Decoding against the KV
    cache uses XLA. `scan_layers`: run the stacked layers with nnx.scan (compile time flat in
    depth) or unrolled (see `_over_layers`). `rows`: the blocks' projections as 2-D matmuls
    (`project`). The parameters are the same either way. `move_geometry` (move_head="squares"
    only): (from squares, to squares, promotions, first id) of the vocabulary's move tokens, as
    tuples; the vocabulary's owner (w2s_jax.chess.encoding.move_geometry) gives it."""
    self.cfg, self.dtype, self.remat, self.scan_layers = cfg, dtype, remat, scan_layers
    self.embed = _param(rngs, nnx.initializers.normal(0.02), (cfg.vocab_size, cfg.d_model),
                        ("vocab", "embed"))
    if cfg.pos_emb == "learned":
      self.pos_embed = _param(rngs, nnx.initializers.normal(0.01), (cfg.max_len, cfg.d_model),
                              ("pos", "embed"))

    @nnx.split_rngs(splits=cfg.n_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs):
      return Block(cfg, attention=attention, rows=rows, rngs=rngs)

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
    if cfg.move_head == "squares":
      if move_geometry is None:
        raise ValueError("move_head='squares' needs move_geometry: the (from, to, promotion) "
                         "squares of each move token and the first one's id")
      self.move_geometry = move_geometry  # static: hashable tuples, not arrays
      self.move_from = _param(rngs, nnx.initializers.normal(cfg.d_model ** -0.5),
                              (cfg.d_model, cfg.d_model), ("embed", "mlp"))
      self.move_to = _param(rngs, nnx.initializers.normal(cfg.d_model ** -0.5),
                            (cfg.d_model, cfg.d_model), ("embed", "mlp"))
      self.promotion_bias = _zeros((5,), ("classes",))  # none, knight, bishop, rook, queen

  def _over_layers(self, body, x, *per_layer):
    """`body(x, block, layer, *slices) -> (x, y)` through every layer (`layer`: its slice of
    `layer_arrays`; `per_layer`: more arrays with a leading layers axis, e.g. a KV cache):
    the last x and the ys stacked on a leading layers axis. Scanned, or (scan_layers=False) a
    Python loop over slices of the stacked blocks: on XLA CPU the scan's backward zeroes,
    writes and reads stacked residual buffers ([layers, B, H, L, T] scores among them) in
    ~20% of a train step's time, which straight-line code avoids (BUILD_NOTES.md, "Speed
    bookkeeping")."""
    layers = layer_arrays(self.cfg)
    if self.scan_layers:
      return nnx.scan(body, in_axes=(nnx.Carry, 0, 0) + (0,) * len(per_layer),
                      out_axes=(nnx.Carry, 0))(x, self.blocks, layers, *per_layer)
    graphdef, state = nnx.split(self.blocks)
    n = self.cfg.n_layers
    # One split per stacked array, not an index per layer: the gradient of t[i] is t's shape
    # padded with zeros, and summing n of them costs n^2 layers of memory traffic (a 12-layer
    # gpt2 step took 1.8x the scan's time); a split's gradient is one concatenation.
    pieces = jax.tree.map(lambda t: [p[0] for p in jnp.split(t, n)], (state, layers, per_layer))
    ys = []
    for i in range(n):
      block, layer, more = jax.tree.map(lambda ps: ps[i], pieces,
                                        is_leaf=lambda v: isinstance(v, list))
      x, y = body(x, nnx.merge(graphdef, block), layer, *more)
      ys.append(y)
    return x, jax.tree.map(lambda *t: jnp.stack(t), *ys)

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
    x, (k, v) = self._over_layers(lambda x, block, layer: block.prefill(x, positions, layer),
                                  self._embed(tokens, positions))
    pad = ((0, 0), (0, 0), (0, cache_len - length), (0, 0), (0, 0))
    h = self.final_norm(x)[jnp.arange(b), lengths - 1]
    return self.lm_logits(h), (jnp.pad(k, pad), jnp.pad(v, pad))

  def decode_step(self, token, position, cache):
    """Next-token logits [B, V] after `token` [B] at `position` [B]; the updated cache."""
    pos = position[:, None]
    x, cache = self._over_layers(lambda x, block, layer, kv: block.decode(x, pos, kv, layer),
                                 self._embed(token[:, None], pos), cache)
    return self.lm_logits(self.final_norm(x)[:, 0]), cache

  def hidden(self, tokens, act_sharding=None):
    """Final-normed hidden states [B, L, d] in the compute dtype."""
    b, length = tokens.shape[:2]
    positions = jnp.broadcast_to(jnp.arange(length)[None], (b, length))
    x = self._embed(tokens, positions)
    constrain = (lambda y: jax.lax.with_sharding_constraint(y, act_sharding)) if act_sharding \
        else (lambda y: y)

    def body(x, block, layer):
      return constrain(block(x, positions, layer)), None

    policy = REMAT_POLICIES[self.remat]
    if self.remat != "none":
      body = nnx.remat(body, policy=policy)
    x, _ = self._over_layers(body, constrain(x))
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

    _, last = self._over_layers(body, constrain(self._embed(tokens, positions)))
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
    num_classes=0, the next token's logits [B, V] there (a one-token answer), or with
    move_head="squares" the moves' from x to scores over that vocabulary."""
    if self.cfg.move_head == "squares":
      return self.square_move_logits(self.hidden(tokens, act_sharding))
    return self.classify(self.features(tokens, lengths, act_sharding))

  def square_move_logits(self, hidden):
    """[B, V] fp32: a move token's logit is from_state . W_from W_to^T . to_state / sqrt(d) +
    a promotion bias; the ids that are not moves get -1e9 (never chosen, no gradient)."""
    sq = hidden[:, :64].astype(jnp.float32)
    a = sq @ self.move_from[...].astype(jnp.float32)
    b = sq @ self.move_to[...].astype(jnp.float32)
    pair = jnp.einsum("bfe,bte->bft", a, b).reshape(sq.shape[0], 64 * 64) / self.cfg.d_model ** 0.5
    frm, to, promo, base = (np.asarray(x) for x in self.move_geometry)
    moves = pair[:, frm * 64 + to] + self.promotion_bias[...].astype(jnp.float32)[promo]
    out = jnp.full((sq.shape[0], self.cfg.vocab_size), -1e9, jnp.float32)
    return jax.lax.dynamic_update_slice_in_dim(out, moves, int(base), axis=1)

  def lm_logits(self, hidden):
    """Next-token logits [B, L, V] (fp32) from `hidden` (soft-capped for Gemma 2)."""
    w = self.embed[...].T if self.cfg.tied_embeddings else self.lm_head[...]
    logits = hidden.astype(jnp.float32) @ w.astype(jnp.float32)
    if self.cfg.final_softcap:
      logits = self.cfg.final_softcap * jnp.tanh(logits / self.cfg.final_softcap)
    return logits
