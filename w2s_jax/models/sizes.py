"""Named model shapes: tiny CPU sizes and the real shapes of public checkpoints.

Real shapes let memory estimates and ahead-of-time compiles run without weights. A size is a dict
of ModelConfig fields; `vocab_size=0` means "take it from the tokenizer" (tiny from-scratch models).
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int
  d_model: int
  n_layers: int
  n_heads: int
  d_ff: int
  n_kv_heads: int = 0  # 0: same as n_heads (no grouped-query attention)
  head_dim: int = 0  # 0: d_model // n_heads
  max_len: int = 1024
  # Architecture family switches: GPT-2 = learned/layernorm/gelu/tied/biases,
  # Llama/Qwen2 = rope/rmsnorm/swiglu (+ qkv bias for Qwen2, + q/k norms for Qwen3),
  # Gemma 2/3 = rope/gemma_rmsnorm/geglu with post-norms, scaled embeddings, local layers.
  pos_emb: str = "learned"  # learned | rope
  norm: str = "layernorm"  # layernorm | rmsnorm | gemma_rmsnorm (scale by 1 + w; w starts at 0)
  mlp: str = "gelu"  # gelu | swiglu | geglu (gate through tanh-gelu: Gemma)
  tied_embeddings: bool = True
  qkv_bias: bool = True
  out_bias: bool = True  # bias on the attention output and MLP projections (GPT-2)
  rope_theta: float = 10000.0
  norm_eps: float = 1e-5
  sliding_window: int = 0  # > 0: a token attends to itself and the previous w - 1 (Mistral)
  # > 0: every n-th layer (i + 1 divisible by n) is global, the others use sliding_window
  # (Gemma 2: 2, Gemma 3: 6); 0: every layer uses sliding_window.
  sliding_window_pattern: int = 0
  # Rope scaling, Hugging Face's rope_type: default | linear | llama3 | yarn (w2s_jax.models.rope).
  rope_type: str = "default"
  rope_factor: float = 1.0  # linear, llama3, yarn
  rope_low_freq_factor: float = 1.0  # llama3
  rope_high_freq_factor: float = 4.0  # llama3
  rope_original_max_len: int = 0  # llama3, yarn: the pretraining context
  rope_beta_fast: float = 32.0  # yarn
  rope_beta_slow: float = 1.0  # yarn
  rope_attention_factor: float = 1.0  # yarn: cos and sin scaled by this (resolved at import)
  rope_local_theta: float = 0.0  # > 0: the base of local layers' (unscaled) rope (Gemma 3)
  qk_norm: bool = False  # a norm of each head's query and key before rope (Qwen3, Gemma 3)
  post_norms: bool = False  # norms of the attention and MLP outputs too (Gemma 2/3)
  embed_scale: bool = False  # embeddings times sqrt(d_model), in the compute dtype (Gemma)
  attn_softcap: float = 0.0  # > 0: attention scores -> cap * tanh(scores / cap) (Gemma 2)
  final_softcap: float = 0.0  # > 0: the same on the language-model logits (Gemma 2)
  query_pre_attn_scalar: float = 0.0  # > 0: scores scaled by its -1/2 power, not head_dim's
  # A board encoder (chess, native encoding): every position attends to every position, and
  # "squares" scores each move from its from- and to-square's final states (bilinear, as
  # Leela's attention policy) instead of one token read at the last position.
  causal: bool = True
  move_head: str = ""  # "" | "squares" (the first 64 positions are the board's squares)

  @property
  def kv_heads(self) -> int:
    return self.n_kv_heads or self.n_heads

  @property
  def dim_head(self) -> int:
    return self.head_dim or self.d_model // self.n_heads

  def layer_windows(self) -> tuple:
    """Each layer's sliding window (0: global attention)."""
    n = self.sliding_window_pattern
    return tuple(0 if n and (i + 1) % n == 0 else self.sliding_window
                 for i in range(self.n_layers))

  def explicit(self) -> "ModelConfig":
    """The same model in one canonical spelling (for comparisons): head_dim, n_kv_heads and the
    query scale spelled out, and a window shared by every layer without a pattern."""
    windows = self.layer_windows()
    same = len(set(windows)) == 1
    return dataclasses.replace(
        self, head_dim=self.dim_head, n_kv_heads=self.kv_heads,
        query_pre_attn_scalar=self.query_pre_attn_scalar or float(self.dim_head),
        sliding_window=windows[0] if same else self.sliding_window,
        sliding_window_pattern=0 if same else self.sliding_window_pattern)


GPT2 = dict(pos_emb="learned", norm="layernorm", mlp="gelu", tied_embeddings=True,
            qkv_bias=True, out_bias=True, norm_eps=1e-5)
LLAMA = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", qkv_bias=False, out_bias=False)
QWEN2 = dict(LLAMA, qkv_bias=True, norm_eps=1e-6, rope_theta=1e6)
QWEN3 = dict(LLAMA, qk_norm=True, norm_eps=1e-6, rope_theta=1e6, max_len=40960)
LLAMA3 = dict(LLAMA, rope_theta=5e5, norm_eps=1e-5, vocab_size=128256, max_len=131072,
              rope_type="llama3", rope_low_freq_factor=1.0, rope_high_freq_factor=4.0,
              rope_original_max_len=8192)
GEMMA = dict(pos_emb="rope", norm="gemma_rmsnorm", mlp="geglu", qkv_bias=False, out_bias=False,
             tied_embeddings=True, post_norms=True, embed_scale=True, norm_eps=1e-6)
GEMMA2 = dict(GEMMA, vocab_size=256000, max_len=8192, rope_theta=1e4, sliding_window=4096,
              sliding_window_pattern=2, attn_softcap=50.0, final_softcap=30.0)
GEMMA3 = dict(GEMMA, qk_norm=True, rope_theta=1e6, rope_local_theta=1e4, sliding_window=1024,
              sliding_window_pattern=6, max_len=131072, vocab_size=262208, rope_type="linear",
              rope_factor=8.0)

SIZES = {
    # Tiny from-scratch sizes for CPU development and CI (vocab from the tokenizer).
    "tiny-0": dict(GPT2, vocab_size=0, d_model=16, n_layers=1, n_heads=1, d_ff=32, max_len=512),
    "tiny-1": dict(GPT2, vocab_size=0, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=512),
    "tiny-2": dict(GPT2, vocab_size=0, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_len=512),
    "tiny-3": dict(GPT2, vocab_size=0, d_model=128, n_layers=3, n_heads=4, d_ff=256, max_len=512),
    "tiny-4": dict(GPT2, vocab_size=0, d_model=256, n_layers=4, n_heads=8, d_ff=512, max_len=512),
    "tiny-llama-1": dict(LLAMA, vocab_size=0, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2,
                         d_ff=64, max_len=512, norm_eps=1e-6),
    "tiny-llama-2": dict(LLAMA, vocab_size=0, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                         d_ff=128, max_len=512, norm_eps=1e-6),
    # From-scratch chess ladders on an accelerator (vocabulary from the chess encoding).
    "chess-10m": dict(LLAMA, vocab_size=0, d_model=384, n_layers=6, n_heads=6, n_kv_heads=6,
                      d_ff=1024, max_len=512),
    "chess-30m": dict(LLAMA, vocab_size=0, d_model=512, n_layers=10, n_heads=8, n_kv_heads=8,
                      d_ff=1408, max_len=512),
    "chess-100m": dict(LLAMA, vocab_size=0, d_model=768, n_layers=14, n_heads=12, n_kv_heads=12,
                       d_ff=2048, max_len=512),
    # Real shapes (weights are imported by the checkpoint module).
    "gpt2": dict(GPT2, vocab_size=50257, d_model=768, n_layers=12, n_heads=12, d_ff=3072),
    "gpt2-medium": dict(GPT2, vocab_size=50257, d_model=1024, n_layers=24, n_heads=16, d_ff=4096),
    "gpt2-large": dict(GPT2, vocab_size=50257, d_model=1280, n_layers=36, n_heads=20, d_ff=5120),
    "gpt2-xl": dict(GPT2, vocab_size=50257, d_model=1600, n_layers=48, n_heads=25, d_ff=6400),
    "qwen2.5-0.5b": dict(QWEN2, vocab_size=151936, d_model=896, n_layers=24, n_heads=14,
                         n_kv_heads=2, d_ff=4864, max_len=32768, tied_embeddings=True),
    "qwen2.5-1.5b": dict(QWEN2, vocab_size=151936, d_model=1536, n_layers=28, n_heads=12,
                         n_kv_heads=2, d_ff=8960, max_len=32768, tied_embeddings=True),
    "qwen2.5-7b": dict(QWEN2, vocab_size=152064, d_model=3584, n_layers=28, n_heads=28,
                       n_kv_heads=4, d_ff=18944, max_len=32768, tied_embeddings=False),
    "llama-3-8b": dict(LLAMA, vocab_size=128256, d_model=4096, n_layers=32, n_heads=32,
                       n_kv_heads=8, d_ff=14336, max_len=8192, rope_theta=5e5,
                       tied_embeddings=False),
    # Llama 3.1 / 3.2 (config.json of meta-llama/Llama-3.1-8B, Llama-3.2-1B, -3B): llama3 rope.
    "llama-3.2-1b": dict(LLAMA3, d_model=2048, n_layers=16, n_heads=32, n_kv_heads=8,
                         head_dim=64, d_ff=8192, tied_embeddings=True, rope_factor=32.0),
    "llama-3.2-3b": dict(LLAMA3, d_model=3072, n_layers=28, n_heads=24, n_kv_heads=8,
                         head_dim=128, d_ff=8192, tied_embeddings=True, rope_factor=32.0),
    "llama-3.1-8b": dict(LLAMA3, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8,
                         head_dim=128, d_ff=14336, tied_embeddings=False, rope_factor=8.0),
    # Qwen3 (Qwen/Qwen3-*): head_dim 128 whatever the width, q/k norms.
    "qwen3-0.6b": dict(QWEN3, vocab_size=151936, d_model=1024, n_layers=28, n_heads=16,
                       n_kv_heads=8, head_dim=128, d_ff=3072, tied_embeddings=True),
    "qwen3-1.7b": dict(QWEN3, vocab_size=151936, d_model=2048, n_layers=28, n_heads=16,
                       n_kv_heads=8, head_dim=128, d_ff=6144, tied_embeddings=True),
    "qwen3-4b": dict(QWEN3, vocab_size=151936, d_model=2560, n_layers=36, n_heads=32,
                     n_kv_heads=8, head_dim=128, d_ff=9728, tied_embeddings=True),
    "qwen3-8b": dict(QWEN3, vocab_size=151936, d_model=4096, n_layers=36, n_heads=32,
                     n_kv_heads=8, head_dim=128, d_ff=12288, tied_embeddings=False),
    # Gemma 2 (google/gemma-2-*): local/global alternating, soft-capping.
    "gemma-2-2b": dict(GEMMA2, d_model=2304, n_layers=26, n_heads=8, n_kv_heads=4, head_dim=256,
                       d_ff=9216, query_pre_attn_scalar=256.0),
    "gemma-2-9b": dict(GEMMA2, d_model=3584, n_layers=42, n_heads=16, n_kv_heads=8,
                       head_dim=256, d_ff=14336, query_pre_attn_scalar=256.0),
    "gemma-2-27b": dict(GEMMA2, d_model=4608, n_layers=46, n_heads=32, n_kv_heads=16,
                        head_dim=128, d_ff=36864, query_pre_attn_scalar=144.0),
    # Gemma 3: 5 local layers per global one. 1B is text-only (google/gemma-3-1b-pt); 4B and
    # 12B are the language models of the multimodal checkpoints (text_config; no vision tower).
    "gemma-3-1b": dict(GEMMA3, vocab_size=262144, d_model=1152, n_layers=26, n_heads=4,
                       n_kv_heads=1, head_dim=256, d_ff=6912, sliding_window=512,
                       max_len=32768, rope_type="default", rope_factor=1.0,
                       query_pre_attn_scalar=256.0),
    "gemma-3-4b": dict(GEMMA3, d_model=2560, n_layers=34, n_heads=8, n_kv_heads=4, head_dim=256,
                       d_ff=10240, query_pre_attn_scalar=256.0),
    "gemma-3-12b": dict(GEMMA3, d_model=3840, n_layers=48, n_heads=16, n_kv_heads=8,
                        head_dim=256, d_ff=15360, query_pre_attn_scalar=256.0),
    "smollm2-135m": dict(LLAMA, vocab_size=49152, d_model=576, n_layers=30, n_heads=9,
                         n_kv_heads=3, d_ff=1536, max_len=8192, rope_theta=1e5,
                         tied_embeddings=True),
}


def size_of_checkpoint(source: str) -> str | None:
  """The size-table name of a Hub checkpoint id by its name ("openai-community/gpt2-xl" ->
  "gpt2-xl", "meta-llama/Llama-3.1-8B-Instruct" -> "llama-3.1-8b"), or None: its shapes
  without fetching its config."""
  name = source.rstrip("/").split("/")[-1].lower()
  for suffix in ("", "-instruct", "-it", "-base", "-hf"):
    if name.endswith(suffix) and name[:len(name) - len(suffix)] in SIZES:
      return name[:len(name) - len(suffix)]
  return None


def model_config(size: str, vocab_size: int = 0, **overrides) -> ModelConfig:
  """The ModelConfig of a named size; `vocab_size` fills sizes that take it from the tokenizer."""
  if size not in SIZES:
    raise KeyError(f"unknown model size {size!r}; known: {sorted(SIZES)}")
  fields = dict(SIZES[size], **{k: v for k, v in overrides.items() if v not in (None, "")})
  if not fields["vocab_size"]:
    if not vocab_size:
      raise ValueError(f"size {size!r} takes its vocabulary from the tokenizer; none given")
    fields["vocab_size"] = vocab_size
  return ModelConfig(**fields)


def param_count(cfg: ModelConfig, num_classes: int = 2) -> int:
  """Exact parameter count of the classifier (body + classification head), without building it."""
  d, f, hd = cfg.d_model, cfg.d_ff, cfg.dim_head
  attn = d * hd * (cfg.n_heads * 2 + cfg.kv_heads * 2)
  if cfg.qkv_bias:
    attn += hd * (cfg.n_heads + 2 * cfg.kv_heads)
  if cfg.qk_norm:
    attn += 2 * hd
  mlp = d * f * (2 if cfg.mlp == "gelu" else 3)
  if cfg.out_bias:
    attn += d
    mlp += f + d
  norms = (2 if cfg.norm == "layernorm" else 1) * d
  block = attn + mlp + (4 if cfg.post_norms else 2) * norms
  total = cfg.n_layers * block + cfg.vocab_size * d + norms
  if cfg.pos_emb == "learned":
    total += cfg.max_len * d
  if not cfg.tied_embeddings:
    total += cfg.vocab_size * d
  return total + d * num_classes
