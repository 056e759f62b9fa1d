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
  # Llama/Qwen2 = rope/rmsnorm/swiglu (+ qkv bias for Qwen2).
  pos_emb: str = "learned"  # learned | rope
  norm: str = "layernorm"  # layernorm | rmsnorm
  mlp: str = "gelu"  # gelu | swiglu
  tied_embeddings: bool = True
  qkv_bias: bool = True
  out_bias: bool = True  # bias on the attention output and MLP projections (GPT-2)
  rope_theta: float = 10000.0
  norm_eps: float = 1e-5
  sliding_window: int = 0  # > 0: a token attends to itself and the previous w - 1 (Mistral)

  @property
  def kv_heads(self) -> int:
    return self.n_kv_heads or self.n_heads

  @property
  def dim_head(self) -> int:
    return self.head_dim or self.d_model // self.n_heads


GPT2 = dict(pos_emb="learned", norm="layernorm", mlp="gelu", tied_embeddings=True,
            qkv_bias=True, out_bias=True, norm_eps=1e-5)
LLAMA = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", qkv_bias=False, out_bias=False)
QWEN2 = dict(LLAMA, qkv_bias=True, norm_eps=1e-6, rope_theta=1e6)

SIZES = {
    # Tiny from-scratch sizes for CPU development and CI (vocab from the tokenizer).
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
    "smollm2-135m": dict(LLAMA, vocab_size=49152, d_model=576, n_layers=30, n_heads=9,
                         n_kv_heads=3, d_ff=1536, max_len=8192, rope_theta=1e5,
                         tied_embeddings=True),
}


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
  mlp = d * f * (3 if cfg.mlp == "swiglu" else 2)
  if cfg.out_bias:
    attn += d
    mlp += f + d
  norms = (2 if cfg.norm == "layernorm" else 1) * d
  block = attn + mlp + 2 * norms
  total = cfg.n_layers * block + cfg.vocab_size * d + norms
  if cfg.pos_emb == "learned":
    total += cfg.max_len * d
  if not cfg.tied_embeddings:
    total += cfg.vocab_size * d
  return total + d * num_classes
