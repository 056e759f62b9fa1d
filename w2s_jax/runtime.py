"""What every setting shares in one run: the mesh, the stage store, the metric writer, one
Trainer per model, the learning-rate rule and the identity of a model in stage keys.

Settings (w2s_jax/pipeline.py for classification and reward models, w2s_jax/chess/ladder.py)
build stage graphs with these helpers; a sweep builds all its graphs on one Runtime, so the
trainers (and their compiled programs) and recent parameters are shared across configs.
"""
import dataclasses
import logging
import os

import jax

from w2s_jax import distributed, models, sharding, stages, train, writer
from w2s_jax.errors import ConfigError

log = logging.getLogger("w2s_jax")

# Config keys of `train` that change no stage output (logging, evaluation batching).
NOT_HASHED = ("log_every", "eval_batch_size", "checkpoint_every", "keep_checkpoints",
              "profile_steps", "batch_seeds")

# Every XLA compilation of this process (jitted steps and small eager ops alike): a run should
# compile a handful of programs per stage, not one per batch.
COMPILES = {"n": 0}
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *_, **__: COMPILES.__setitem__("n", COMPILES["n"] + (
        name == "/jax/core/compile/backend_compile_duration")))


def enable_compilation_cache() -> str:
  """JAX's persistent compilation cache under the cache folder (W2S_CACHE, default
  ~/.cache/w2s_jax/xla; W2S_XLA_CACHE names another folder): a program compiled once is loaded,
  not compiled, by later stages, processes and runs with the same shapes. It holds no data, so
  CI keeps it while it empties the asset cache. W2S_COMPILATION_CACHE=0 switches it off."""
  if os.environ.get("W2S_COMPILATION_CACHE", "1") == "0":
    return ""
  from w2s_jax import fetch  # noqa: PLC0415
  path = os.environ.get("W2S_XLA_CACHE") or fetch.cache_dir("xla")
  if jax.config.jax_compilation_cache_dir != path:
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  return path


def hashed_train(tcfg) -> dict:
  """What a stage key hashes of a train config."""
  return {k: v for k, v in tcfg.to_dict().items() if k not in NOT_HASHED}


def loss_hp(cfg, loss: str, n_params: int = 0) -> dict:
  """The hyper-parameters of loss `loss` (config.loss.<name>; none for most) for a student of
  `n_params` parameters: logconf's alpha_max_large replaces alpha_max above
  train.large_model_params."""
  hp = cfg.loss[loss].to_dict() if loss in cfg.loss else {}
  large = hp.pop("alpha_max_large", -1.0)
  if large >= 0 and n_params > cfg.train.large_model_params:
    hp["alpha_max"] = large
  return hp


def role_schedule(cfg, role: str, spec):
  """(train config, exact steps or 0) of a model trained in `role` (weak, ceiling, student):
  config.schedules[role], or schedules.probe for a probed model."""
  s = cfg.schedules["probe" if spec.mode == "probe" else role]
  return (train.with_overrides(cfg.train, epochs=s.epochs) if s.epochs else cfg.train), s.steps


class Runtime:
  """Mesh, stage store and caches of one invocation (one workdir)."""

  def __init__(self, cfg, workdir: str):
    self.workdir = workdir
    enable_compilation_cache()
    self.mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)
    self.rules = sharding.check_rules(cfg.rules)
    self.store = stages.StageStore(workdir)
    self.writer = writer.MetricWriter(workdir, cfg.tensorboard) if distributed.is_main() \
        else None
    self._trainers, self._memo, self._params = {}, {}, {}

  def stage_writer(self, stage):
    """The metric writer of one stage (None on processes other than 0)."""
    return self.writer.for_stage(stage.key) if self.writer else None

  def profile_dir(self, stage) -> str:
    """Where a train stage's profiled steps go (train.profile_steps); on process 0."""
    return f"{self.workdir}/profile/{stage.name}" if distributed.is_main() else ""

  def memo(self, key, make):
    """`make()` once per key for the whole invocation (data splits shared by a sweep's configs)."""
    if key not in self._memo:
      self._memo[key] = make()
    return self._memo[key]

  def model_cfg(self, spec, vocab_size: int):
    """A model spec's ModelConfig, read once per invocation (a checkpoint's config is parsed
    once, not once per stage); the tokenizer must fit the model's vocabulary."""
    def make():
      mc = models.from_spec(spec, vocab_size)
      if vocab_size > mc.vocab_size:
        raise ConfigError(f"config key 'tokenizer': it has {vocab_size} ids, more than the "
                          f"vocabulary of {spec.init} ({mc.vocab_size})")
      return mc
    return self.memo(("model_cfg", spec.size, spec.init, spec.n_layers, vocab_size), make)

  def trainer(self, model_cfg, num_classes: int, *, dtype: str, attention: str,
              remat: str = "none", lora=None, pairwise: bool = False,
              move_geometry=None) -> train.Trainer:
    k = (model_cfg, num_classes, dtype, attention, remat, lora, pairwise, move_geometry)
    if k not in self._trainers:
      self._trainers[k] = train.Trainer(model_cfg, num_classes, self.mesh, self.rules,
                                        dtype=dtype, remat=remat, attention=attention,
                                        lora=lora, pairwise=pairwise,
                                        move_geometry=move_geometry)
    return self._trainers[k]

  # Parameters of the most recent train stages stay in memory, so the predict stages that follow
  # a train stage do not restore what was just trained.
  def keep_params(self, stage_name: str, params) -> None:
    self._params = {stage_name: params}

  def params(self, kind: str, key: str, tr: train.Trainer) -> dict:
    name = f"{kind}-{key}"
    if name not in self._params:
      self._params = {name: self.store.params(kind, key, tr.abstract_params(),
                                              tr.param_shardings)}
    return self._params[name]


def model_identity(spec, model_cfg) -> dict:
  """What a stage key hashes of a model: its architecture, checkpoint and mode."""
  return {"size": spec.size, "init": spec.init, "mode": spec.mode,
          "lora": [spec.lora_rank, spec.lora_alpha, list(spec.lora_targets)]
          if spec.lora_rank else None,
          **{k: v for k, v in dataclasses.asdict(model_cfg).items()
             if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]},
          "checkpoint": models.fingerprint(spec.init)}


# Architecture fields added after stages were first cached: hashed only when not at their
# default, so the stages of every model without them keep their keys (and caches).
_LATER_FIELDS = {"causal": True, "move_head": ""}


def learning_rate(tcfg, model_cfg, spec) -> float:
  """The reference rule (train.lr up to train.large_model_params parameters, else lr_large),
  unless the model spec sets its own lr."""
  return train.learning_rate(tcfg, model_cfg, spec.lr)
