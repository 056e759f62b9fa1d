"""Models: the size table, the NNX transformer, checkpoints (Hugging Face safetensors, GGUF)."""
import functools

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


@functools.lru_cache(maxsize=None)
def fingerprint(init: str):
  """Identity of a checkpoint init for stage keys (None for "scratch"), hashed once per process."""
  module = checkpoint_module(init)
  return module.fingerprint(init.split(":", 1)[1]) if module else None


def initial_params(init: str, trainer, seed: int) -> dict:
  """A trainer's starting parameters: the checkpoint `init` names, loaded into the trainer's
  shards, or a seeded initialisation for "scratch"."""
  module = checkpoint_module(init)
  if module is None:
    return trainer.init_params(seed)
  return module.load_params(init.split(":", 1)[1], trainer.abstract_params(),
                            trainer.param_shardings)


def display_name(spec) -> str:
  """How results and logs name a model: its size, or its checkpoint when the size is "auto"."""
  if spec.size != "auto":
    return spec.size
  return spec.init.split(":", 1)[1].rstrip("/").split("/")[-1]
