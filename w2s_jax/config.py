"""Every knob's default, in one place, and validation of a whole config before any work starts.

Config files (configs/*.py) start from `defaults()` and change what they need. The defaults are
the keys every setting shares (models, losses, training, mesh, selection) plus each setting's
own group, declared by its module in w2s_jax/settings/. `validate` checks the shared keys and
then only the keys of the config's own setting, and names the bad key.
"""
import importlib.util

import jax
import ml_collections

from w2s_jax import losses, settings, sharding
from w2s_jax.errors import ConfigError
# The config files' API: model and ladder entries (w2s_jax/options.py).
from w2s_jax.options import (check_ranges, check_tree, ladder, ladder_rungs,  # noqa: F401
                             model_entry, model_spec, require, rung_spec, unknown_key)


def defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiment = "nlp"  # a setting of w2s_jax/settings/: nlp | chess | vision
  c.seeds = (0,)  # replicate seeds: one result row each
  # What a seed changes. split: its own A/B split of the training rows (chess: its own weak and
  # transfer slices), hence its own weak model and weak labels, besides init and batch order;
  # the test rows stay fixed. batch_order: init and batch order only, on one shared split (an
  # interval over such seeds leaves out which rows the weak model saw).
  c.seed_scope = "split"
  c.data_seed = 0  # the test rows, subsampling, and the shared split of seed_scope batch_order
  c.tokenizer = "byte"  # byte | file:PATH | hf:ORG/NAME
  c.max_len = 1024  # longer examples are dropped and counted, not truncated
  c.weak = model_spec("tiny-1")
  c.strong = model_spec("tiny-2")
  c.losses = ("xent",)  # student losses; the weak labels and the ceiling are shared
  c.loss = ml_collections.ConfigDict(dict(
      # alpha warms up linearly over warmup_steps (0: over warmup_frac of the steps) to
      # alpha_max, or to alpha_max_large (>= 0) for students above train.large_model_params
      # parameters (the paper: 0.5, and 0.75 for the largest students).
      logconf=dict(alpha_max=0.75, warmup_frac=0.2, warmup_steps=0, alpha_max_large=-1.0),
      product=dict(alpha=1.0, beta=1.0),
      window=dict(radius=-1.0),  # < 0: median |y_weak - 1/C| of the batch
      entropy=dict(entropy_weight=0.1),
      logconf_balanced=dict(alpha_max=0.75, warmup_frac=0.2, warmup_steps=0),
      # the weak labels' floor inside log y: a hard label's log 0 is -inf
      reverse_xent=dict(floor=1e-4),
      reverse_kl=dict(floor=1e-4),
  ))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32,  # the optimizer batch (global)
      micro_batch_size=0,  # 0: no gradient accumulation
      eval_batch_size=64,
      epochs=2.0,
      optimizer="adam",  # adam | adamw
      lr=5e-5, lr_large=1e-5, large_model_params=400_000_000,
      b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine",  # cosine | linear | constant (decay to 0 over training)
      warmup_steps=0,
      grad_clip=0.0,  # 0: none
      dtype="float32",  # compute dtype: float32 | bfloat16 (parameters stay float32)
      attention="xla",  # attention kernel: xla | cudnn (flash attention; NVIDIA GPU, bfloat16)
      buckets=(64, 128, 256, 512, 1024),  # padded sequence lengths: one program each
      log_every=10,
      checkpoint_every=200,  # steps between training checkpoints (0: only on preemption)
      keep_checkpoints=2,  # the latest N are kept
      # (first, last) optimizer steps of every train stage traced with jax.profiler into
      # WORKDIR/profile/<stage> (TensorBoard's profile plugin or Perfetto); (0, 0): none.
      profile_steps=(0, 0),
      # Stages that differ only by seed run as one program over a leading seeds axis where
      # that wins (linear probes; full fine-tunes run one by one): results as separate runs.
      batch_seeds=True,
  ))
  # A grid in one invocation (w2s_jax/experiment.py): every pair i < j of `models` (weak i,
  # strong j; size names or checkpoint inits, the other settings from `weak` and `strong`) times
  # every point of `grid`, a tuple of ("dotted.key", (values, ...)). Losses and seeds are swept
  # by `losses` and `seeds`. Stages shared by several points are trained once.
  c.sweep = ml_collections.ConfigDict(dict(models=(), grid=()))
  # Model selection, one rule for every role: each trained model holds out the last `val_rows`
  # rows of its own training data (0: a tenth of the students' rows), is scored there every
  # `every` steps (metric auroc | acc | loss) and keeps its best step's parameters. The weak
  # model and the ceiling are scored against A's ground truth, a student against B's WEAK labels
  # (what a real weak-to-strong user has). `oracle` scores students against those rows' ground
  # truth instead: an analysis, not a method (marked in every table). Disabled, every role
  # trains to its schedule's last step.
  c.early_stopping = ml_collections.ConfigDict(dict(
      enabled=False, val_rows=0, every=50, metric="auroc", oracle=False))
  c.curves_every = 0  # > 0: every trained model is scored on test every N steps (the curves)
  c.tensorboard = False  # TensorBoard event files per stage under WORKDIR/tensorboard
  # Training length per role: epochs (0: train.epochs) or exactly `steps` optimizer steps
  # (0: by epochs). `probe` applies to every role of a probed model (mode "probe").
  c.schedules = ml_collections.ConfigDict({
      role: dict(epochs=0.0, steps=0) for role in ("weak", "ceiling", "student", "probe")})
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
  c.rules = sharding.DEFAULT_RULES
  c.bootstrap_samples = 1000  # resamples of the test set for the PGR confidence interval
  for setting in settings.every():  # each setting's own keys
    setting.defaults(c)
  return c


# ------------------------------------------------------------------------------ validation
def override_error(argv) -> ConfigError | None:
  """The ConfigError for the first --config.KEY=VALUE of `argv` whose KEY is not in the config
  that --config names (flag parsing reports it as a Python repr with a literal \\n, or as a
  bare 'm4' for a ladder rung); None when every key exists."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "")
  cfg = defaults()
  if spec:
    path, _, arg = spec.partition(":")
    try:
      module_spec = importlib.util.spec_from_file_location("w2s_config_file", path)
      module = importlib.util.module_from_spec(module_spec)
      module_spec.loader.exec_module(module)
      cfg = module.get_config(arg) if arg else module.get_config()
    except Exception:  # noqa: BLE001  (the config file's own error is reported elsewhere)
      pass
  for a in argv:
    if not a.startswith("--config."):
      continue
    node, done = cfg, []
    for part in a[len("--config."):].split("=", 1)[0].split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        if done == ["ladder"]:
          return ConfigError(
              f"unknown ladder rung 'ladder.{part}': this config's ladder has "
              f"{', '.join(node.keys()) or 'no rungs'} (rungs are added in the config file: "
              "ladder(rung_spec(...), ...))")
        return unknown_key(".".join(done + [part]), node.keys() if isinstance(
            node, ml_collections.ConfigDict) else [])
      node, done = node[part], done + [part]
  return None


def _unused_keys(cfg, ref) -> None:
  """A key of another setting's group changed from its default would do nothing in this run:
  refused, so that a run never silently ignores what its config asks for."""
  for other in settings.SETTINGS:
    if other == cfg.experiment:
      continue
    own = ml_collections.ConfigDict()
    settings.get(other).defaults(own)
    for key in own.keys():
      if _flat(cfg[key]) != _flat(ref[key]):
        changed = next(k for k, v in _flat(cfg[key]).items() if _flat(ref[key]).get(k) != v)
        raise ConfigError(f"config key {f'{key}.{changed}'.rstrip('.')!r} belongs to the {other} "
                          f"setting: with experiment={cfg.experiment!r} it would do nothing")


def _flat(node, prefix: str = "") -> dict:
  if not isinstance(node, ml_collections.ConfigDict):
    return {prefix: node}
  return {k: v for key in node.keys() for k, v in _flat(node[key], f"{prefix}{key}.").items()}


# Numeric knobs every setting shares, by their lowest sensible value.
RANGES = {
    "data_seed": (0, ""), "max_len<": (0, ""),
    "train.batch_size<": (0, ""), "train.micro_batch_size": (0, "0: no gradient accumulation"),
    "train.eval_batch_size<": (0, ""), "train.epochs<": (0, ""), "train.lr<": (0, ""),
    "train.lr_large<": (0, ""), "train.large_model_params<": (0, ""), "train.b1": (0, ""),
    "train.b2": (0, ""), "train.eps<": (0, ""), "train.weight_decay": (0, ""),
    "train.warmup_steps": (0, "0: no warmup"), "train.grad_clip": (0, "0: no clipping"),
    "train.log_every<": (0, "steps between log lines"),
    "train.checkpoint_every": (0, "0: only on preemption"), "train.keep_checkpoints": (1, ""),
    "bootstrap_samples": (0, "0: no confidence interval"),
    "loss.logconf.alpha_max": (0, ""), "loss.logconf.warmup_frac": (0, ""),
    "loss.logconf.warmup_steps": (0, "0: warmup_frac"),
    "early_stopping.val_rows": (0, "0: a tenth of the students' rows"),
    "early_stopping.every<": (0, "steps between evaluations"),
    "curves_every": (0, "0: no test curves"),
    "loss.logconf.alpha_max_large": (-1, "< 0: alpha_max"),
    **{f"schedules.{role}.{k}": (0, f"0: {d}") for role in ("weak", "ceiling", "student", "probe")
       for k, d in (("epochs", "train.epochs"), ("steps", "by epochs"))},
    "loss.product.alpha": (0, ""), "loss.product.beta": (0, ""),
    "loss.entropy.entropy_weight": (0, ""),
    "loss.logconf_balanced.alpha_max": (0, ""), "loss.logconf_balanced.warmup_frac": (0, ""),
    "loss.logconf_balanced.warmup_steps": (0, "0: warmup_frac"),
    "loss.reverse_xent.floor<": (0, ""), "loss.reverse_kl.floor<": (0, ""),
}


def validate(cfg, n_devices: int, devices=None) -> None:
  """Raise ConfigError naming the first bad key: the shared keys, then the config's setting's
  own (a key of another setting is checked for its type only). `devices`: the mesh's devices
  (default: all)."""
  ref = defaults()
  check_tree(cfg, ref, "")
  setting = settings.get(cfg.experiment)
  _unused_keys(cfg, ref)
  t = cfg.train
  require(len(cfg.seeds) > 0 and all(type(s) is int and s >= 0 for s in cfg.seeds) and
          len(set(cfg.seeds)) == len(cfg.seeds), "seeds",
          f"a tuple of distinct ints >= 0, e.g. (0, 1, 2); got {tuple(cfg.seeds)!r}")
  check_ranges(cfg, RANGES)
  require(cfg.seed_scope in ("split", "batch_order"), "seed_scope", "split | batch_order")
  for axis in ("data", "fsdp", "tensor"):
    require(cfg.mesh[axis] == -1 or cfg.mesh[axis] >= 1, f"mesh.{axis}",
            f"-1 (the remaining devices) or >= 1, got {cfg.mesh[axis]}")
  require(t.b1 < 1 and t.b2 < 1, "train.b1", f"Adam's b1 and b2 must be < 1, got {t.b1}, {t.b2}")
  lp = cfg.loss.product
  require(lp.alpha + lp.beta > 0, "loss.product.alpha", "alpha and beta cannot both be 0")
  for name in cfg.losses:
    require(name in losses.LOSSES, "losses",
            f"unknown loss {name!r}; known: {sorted(losses.LOSSES)}")
  require(len(cfg.losses) > 0, "losses", "at least one student loss")
  ps = cfg.train.profile_steps
  require(len(ps) == 2 and all(isinstance(x, int) and x >= 0 for x in ps) and ps[0] <= ps[1],
          "train.profile_steps", f"(first, last) steps with 0 <= first <= last, got {ps}")
  require(cfg.early_stopping.metric in ("auroc", "acc", "loss"), "early_stopping.metric",
          "auroc | acc | loss (against the weak labels of the held-out rows)")
  require(t.optimizer in ("adam", "adamw"), "train.optimizer", "adam | adamw")
  require(t.schedule in ("cosine", "linear", "constant"), "train.schedule",
          "cosine | linear | constant")
  require(t.dtype in ("float32", "bfloat16"), "train.dtype", "float32 | bfloat16")
  require(t.attention in ("xla", "cudnn"), "train.attention", "xla | cudnn")
  require(t.attention != "cudnn" or t.dtype == "bfloat16", "train.attention",
          "cudnn flash attention needs train.dtype='bfloat16'")
  platform = (devices if devices is not None else jax.devices())[0].platform
  require(t.attention != "cudnn" or platform == "gpu", "train.attention",
          f"cudnn flash attention needs NVIDIA GPUs; this run's devices are {platform} (use xla)")
  require(len(t.buckets) > 0 and all(type(b) is int for b in t.buckets) and
          list(t.buckets) == sorted(set(t.buckets)) and t.buckets[0] > 0, "train.buckets",
          "strictly increasing positive lengths (ints)")
  require(t.buckets[-1] >= cfg.max_len, "train.buckets",
          f"the largest bucket {t.buckets[-1]} must hold max_len={cfg.max_len}")
  micro = t.micro_batch_size or t.batch_size
  require(t.batch_size % micro == 0, "train.micro_batch_size",
          f"{micro} does not divide train.batch_size={t.batch_size}")
  rules = sharding.check_rules(cfg.rules)
  try:
    mesh_shape = dict(zip(sharding.MESH_AXES, sharding.make_mesh(
        cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor, devices=devices).devices.shape))
  except ValueError as e:
    raise ConfigError(f"config key 'mesh': {e}") from None
  dp = sharding.data_parallel_size(rules, mesh_shape)
  require(micro % dp == 0, "train.batch_size",
          f"the micro-batch {micro} is not divisible by the data-parallel size {dp} "
          f"(mesh {mesh_shape}, {n_devices} devices)")
  require(t.eval_batch_size % dp == 0, "train.eval_batch_size",
          f"{t.eval_batch_size} is not divisible by the data-parallel size {dp}")
  lc = cfg.loss.logconf
  require(0 <= lc.alpha_max <= 1, "loss.logconf.alpha_max", "must be in [0, 1]")
  require(0 <= lc.warmup_frac <= 1, "loss.logconf.warmup_frac", "must be in [0, 1]")
  setting.validate(cfg, devices)
