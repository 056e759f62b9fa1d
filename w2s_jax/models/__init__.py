"""Models: the size table, the NNX transformer, checkpoints (Hugging Face safetensors, GGUF)."""
import dataclasses
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


def from_spec(spec, vocab_size: int, fetch: bool = True) -> ModelConfig:
  """The ModelConfig of a config's model spec: from a checkpoint (init "hf:SOURCE" or
  "gguf:SOURCE", size "auto" or the matching size-table name) or from the size table.
  fetch=False never downloads a Hub checkpoint (hf.load_config)."""
  module = checkpoint_module(spec.init)
  if module is None:
    mc = model_config(spec.size, vocab_size)
  else:
    source = spec.init.split(":", 1)[1]
    mc = (module.load_config(source, fetch=fetch) if spec.init.startswith("hf:") else
          module.load_config(source))
    if spec.size != "auto" and model_config(spec.size, mc.vocab_size).explicit() != mc.explicit():
      raise ValueError(f"checkpoint {spec.init} does not have the shape of size {spec.size!r}; "
                       "use size 'auto' to take it from the checkpoint")
  return truncated(mc, spec.get("n_layers", 0))


def truncated(mc: ModelConfig, n_layers: int) -> ModelConfig:
  """The model cut to its first `n_layers` layers (0: all), its final norm and head kept: a
  weaker model from a stronger checkpoint (a checkpoint loads its first layers into it)."""
  if not n_layers or n_layers == mc.n_layers:
    return mc
  if n_layers > mc.n_layers:
    raise ValueError(f"n_layers={n_layers}: the model has {mc.n_layers} layers")
  return dataclasses.replace(mc, n_layers=n_layers)


@functools.lru_cache(maxsize=None)
def fingerprint(init: str):
  """Identity of a checkpoint init for stage keys (None for "scratch"), hashed once per process."""
  module = checkpoint_module(init)
  return module.fingerprint(init.split(":", 1)[1]) if module else None


def check_checkpoint(init: str, abstract_params: dict) -> None:
  """Before any training: does checkpoint `init` load into parameters shaped like
  `abstract_params` (a Trainer's `abstract_params()`)? Reads headers only (safetensors header
  JSON, GGUF tensor infos) and raises CheckpointError naming the file and the tensor for a
  truncated file or header, a missing tensor or a shape the model does not have. "scratch":
  nothing to check."""
  module = checkpoint_module(init)
  if module is not None:
    module.check(init.split(":", 1)[1], abstract_params)


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
  name = spec.size if spec.size != "auto" else spec.init.split(":", 1)[1].rstrip("/").split("/")[-1]
  return name + (f"@{spec.n_layers}L" if spec.get("n_layers", 0) else "")
