"""Models: the size table, the NNX transformer, checkpoints (Hugging Face safetensors, GGUF)."""
from w2s_jax.models.sizes import SIZES, ModelConfig, model_config, param_count
from w2s_jax.models.transformer import Transformer

CHECKPOINT_KINDS = ("hf", "gguf")


def checkpoint_module(init: str):
  """The import module for an init string ("hf:..." or "gguf:..."), or None for "scratch"."""
  kind = init.split(":", 1)[0]
  if kind == "hf":
    from w2s_jax.models import hf  # noqa: PLC0415
    return hf
  if kind == "gguf":
    from w2s_jax.models import gguf_checkpoint  # noqa: PLC0415
    return gguf_checkpoint
  return None


def from_spec(spec, vocab_size: int) -> ModelConfig:
  """The ModelConfig of a config's model spec: from a checkpoint (init "hf:SOURCE" or
  "gguf:SOURCE", size "auto" or the matching size-table name) or from the size table."""
  module = checkpoint_module(spec.init)
  if module is None:
    return model_config(spec.size, vocab_size)
  mc = module.load_config(spec.init.split(":", 1)[1])
  if spec.size != "auto" and model_config(spec.size, mc.vocab_size) != mc:
    raise ValueError(f"checkpoint {spec.init} does not have the shape of size {spec.size!r}; "
                     "use size 'auto' to take it from the checkpoint")
  return mc


def display_name(spec) -> str:
  """How results and logs name a model: its size, or its checkpoint when the size is "auto"."""
  if spec.size != "auto":
    return spec.size
  return spec.init.split(":", 1)[1].rstrip("/").split("/")[-1]
