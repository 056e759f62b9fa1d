"""Will it fit? Compile a run's heaviest program for the config's mesh without training.

Each setting names that program (settings/*.py `program`): the strong model's train step as
`loop.fit` builds it (loop.train_program: the same objective, loss, optimizer and shardings),
or, for a frozen model (a linear probe, a vision backbone), its features forward. It is lowered
and compiled on abstract inputs (no parameters are created, no checkpoint fetched: shapes come
from the size tables) and the report gives per device: parameters, optimizer state, the
compiled program's arguments, outputs and temporaries, and FLOPs per step. The mesh is the config's, over this machine's devices, over N fake CPU
devices (--fake_devices), or over a TPU slice that jax describes on a CPU (--topology=v5e:4x4,
with libtpu installed): compiling for a pod slice from a laptop.
"""
import math
import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from w2s_jax import config as config_lib, loop, options, runtime as rt_lib, settings, \
    sharding, sweep, train
from w2s_jax.models import param_count

GIB = 2 ** 30


# Per chip: peak bf16 FLOP/s, HBM bytes, HBM bytes/s, bidirectional ICI bytes/s (Cloud TPU
# documentation: docs.cloud.google.com/tpu/docs/v5e, v5p-training, v6e).
CHIPS = {
    "v5e": dict(flops=197e12, hbm=16e9, hbm_bw=819e9, ici_bw=400e9),
    "v5p": dict(flops=459e12, hbm=95e9, hbm_bw=2765e9, ici_bw=1200e9),
    "v6e": dict(flops=918e12, hbm=32e9, hbm_bw=1638e9, ici_bw=800e9),
}


def roofline(flops: float, params: int, mesh_shape: dict, remat: str, chip: dict,
             accum: int = 1, compute_bytes: int = 2, train: bool = True) -> dict:
  """A lower bound on one train step's time per device, from three ceilings that overlap at
  best: compute (`flops` per device at peak); HBM traffic (each micro-batch's passes, forward,
  backward and the remat forward, read the device's 1/tensor of the weights in compute dtype;
  the optimizer reads and writes its fsdp x tensor shard of fp32 parameters, gradients and two
  Adam moments, 28 bytes a parameter); ICI traffic (those reads all-gathered over fsdp, and a
  reduce-scatter of fp32 gradients over the data and fsdp devices). Activations are left out:
  a bound, not a prediction. The MFU bound is compute time over the bound. `train=False`: a
  forward of frozen weights (one read of them, no optimizer, no gradients)."""
  t, f = mesh_shape.get("tensor", 1), mesh_shape.get("fsdp", 1)
  m = math.prod(mesh_shape.values()) // t  # devices holding other shards of one tensor slice
  passes = (3 if remat == "full" else 2) if train else 1
  reads = passes * accum * params * compute_bytes / t
  compute = flops / chip["flops"]
  hbm = (reads + (28 * params / (f * t) if train else 0)) / chip["hbm_bw"]
  ici = (reads * (f - 1) / f + (4 * params / t * (m - 1) / m if train else 0)) / chip["ici_bw"]
  step = max(compute, hbm, ici)
  bound = {compute: "compute", hbm: "HBM", ici: "ICI"}[step]
  return {"compute_s": compute, "hbm_s": hbm, "ici_s": ici, "step_s": step, "bound": bound,
          "mfu_bound": compute / step}


class DoesNotFit(RuntimeError):
  """The compiler says the train step needs more memory than a device has."""


def tpu_devices(topology: str):
  # Describing a slice uses no TPU: let libtpu load beside another process that holds it.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    from jax.experimental import topologies  # noqa: PLC0415
    return topologies.get_topology_desc(platform="tpu", topology_name=topology).devices
  except Exception as e:  # noqa: BLE001  (jax raises several kinds when libtpu is missing)
    raise ValueError(f"--topology={topology}: jax cannot describe this TPU slice here ({e}); "
                     "install libtpu (pip install -e '.[tpu]') and use a name like v5e:4x4") \
        from None


def _per_device_bytes(tree) -> int:
  return sum(math.prod(x.sharding.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize
             for x in jax.tree.leaves(tree))


def model_flops(mc, tokens: int, length: int, remat: str) -> float:
  """Training FLOPs of the classifier per step: matmuls 2 N per token forward (N without the
  embedding tables; the classification head reads one token), attention scores and values
  4 L d_attn per token per layer (a sliding-window layer: 4 min(L, window) d_attn), backward
  twice the forward, and one more forward under full remat."""
  d_attn = mc.n_heads * mc.dim_head
  n = param_count(mc, num_classes=0) - mc.vocab_size * mc.d_model * (
      1 if mc.tied_embeddings else 2) - (mc.max_len * mc.d_model if mc.pos_emb == "learned" else 0)
  span = sum(min(length, w or length) for w in mc.layer_windows())  # keys per query, all layers
  forward = tokens * (2 * n + 4 * span * d_attn)
  return forward * (4 if remat == "full" else 3)


NOMINAL_STEPS = 1000  # the schedule length a loss's warmup is resolved for (a constant)


class Program(NamedTuple):
  """One program of a run, described on abstract inputs: what the dry run compiles."""
  what: str  # e.g. "train step of gpt2 (soft targets, xent)"
  fn: Callable  # jitted
  args: tuple  # abstract arguments (ShapeDtypeStruct with shardings)
  params: object  # the abstract parameters (per-device bytes are reported)
  opt_state: object  # the abstract optimizer state, or None (a forward only)
  batch: tuple  # the batch's shape: [accum, micro, length] or [batch, H, W, C]
  flops: float | None  # model FLOPs of one call, all devices (None: XLA's count)
  n_params: int
  remat: str
  accum: int = 1
  knobs: tuple = ()  # (remat key, micro-batch key) that what_fits may change; () none


def _abstract(tree, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree,
                      shardings)


def transformer_train(cfg, tr, *, name: str, remat: str, remat_key: str, objective: str,
                      loss_name: str, length: int, answer_len: int = 0, legal: bool = False,
                      ids: int = 0) -> Program:
  """The train step `loop.fit` runs for this trainer and these choices, on abstract inputs.
  `ids`: ids per position (a chess board square's piece and square), 0: one token."""
  t = cfg.train
  hp = loop.resolve_hp(rt_lib.loss_hp(cfg, loss_name, param_count(tr.model_cfg)), NOMINAL_STEPS)
  step_fn, init_fn, shardings = loop.train_program(tr, t, objective=objective,
                                                   loss_name=loss_name, loss_hp=hp, legal=legal)
  params = _abstract(tr.abstract_params(), tr.param_shardings)
  state = jax.eval_shape(init_fn, params)
  accum = t.batch_size // (t.micro_batch_size or t.batch_size)
  micro = t.batch_size // accum
  pair = (2,) if tr.pairwise else ()
  shapes = {"tokens": ((accum, micro, length, *((ids,) if ids else ()), *pair), jnp.int32),
            "lengths": ((accum, micro, *pair), jnp.int32),
            "targets": {"soft": ((accum, micro, tr.classes), jnp.float32),
                        "hard": ((accum, micro), jnp.int32),
                        "answer": ((accum, micro, answer_len), jnp.int32)}[objective]}
  if legal:
    shapes["legal"] = ((accum, micro, (tr.classes + 7) // 8), jnp.uint8)
  batch = {k: jax.ShapeDtypeStruct(s, d, sharding=shardings[k]) for k, (s, d) in shapes.items()}
  values = {k: jax.ShapeDtypeStruct((), jnp.float32, sharding=tr.replicated)
            for k in train.schedule_values(t, 1.0, NOMINAL_STEPS)}
  tokens = accum * micro * (2 if tr.pairwise else 1) * length
  return Program(f"train step of {name} ({objective} targets, {loss_name}"
                 f"{', legal moves' if legal else ''}{', LoRA' if tr.lora else ''})",
                 step_fn, (state, batch, values), state["params"] if not tr.lora
                 else state["frozen"], state["opt_state"], shapes["tokens"][0],
                 model_flops(tr.model_cfg, tokens, length, remat), param_count(tr.model_cfg),
                 remat, accum, (remat_key, "train.micro_batch_size"))


def transformer_features(cfg, tr, *, name: str, length: int) -> Program:
  """The features forward of a frozen (probed) model: what its run spends accelerator time on."""
  b = cfg.train.eval_batch_size
  fn, (p, tok, n) = tr.predict_program("features")
  args = (_abstract(tr.abstract_params(), p), jax.ShapeDtypeStruct((b, length), jnp.int32,
                                                                   sharding=tok),
          jax.ShapeDtypeStruct((b,), jnp.int32, sharding=n))
  return Program(f"features forward of {name} (a frozen, probed model)", fn, args, args[0], None,
                 (b, length), model_flops(tr.model_cfg, b * length, length, "none") / 3,
                 param_count(tr.model_cfg), "none")


def batch_sharding(mesh, rank: int):
  """Rows over every device of the mesh (a data-parallel forward), the rest replicated."""
  return NamedSharding(mesh, P(mesh.axis_names, *([None] * (rank - 1))))


def compile_program(cfg, devices=None) -> tuple:
  """(compiled, Program, mesh) of cfg's setting's heaviest program on cfg's mesh."""
  mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor, devices=devices)
  program = settings.get(cfg.experiment).program(cfg, mesh)
  return program.fn.lower(*program.args).compile(), program, mesh


def _fits(cfg, devices) -> bool:
  try:
    compile_program(cfg, devices)
    return True
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" in str(e):
      return False
    raise


def what_fits(cfg, devices, knobs: tuple) -> str:
  """The change that makes a program that does not fit fit, found by compiling: full remat
  first, then the largest micro-batch (gradient accumulation over the same optimizer batch)
  that halving finds; or the sentence that none does."""
  if not knobs:
    return ("use more chips, a larger fsdp or tensor axis, or a smaller batch "
            "(this program has no remat or micro-batch to change)")
  remat_key, micro_key = knobs
  cfg = cfg.copy_and_resolve_references()
  tried = []
  if options.get(cfg, remat_key) != "full":
    sweep.set_key(cfg, remat_key, "full")
    if _fits(cfg, devices):
      return f"it fits with --config.{remat_key}=full"
    tried.append(f"{remat_key}=full")
  micro = cfg.train.micro_batch_size or cfg.train.batch_size
  dp = sharding.data_parallel_size(sharding.check_rules(cfg.rules), dict(zip(
      sharding.MESH_AXES, sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor,
                                             devices=devices).devices.shape)))
  while micro // 2 >= dp and (micro // 2) % dp == 0:
    micro //= 2
    cfg.train.micro_batch_size = micro
    if _fits(cfg, devices):
      return ("it fits with " + " ".join(f"--config.{t}" for t in tried) +
              f" --config.{micro_key}={micro} (the largest micro-batch that does)"
              ).replace("with  ", "with ")
  return (f"nothing fits this slice, down to micro-batches of {micro} with full remat: use more "
          "chips, a larger fsdp or tensor axis, LoRA, or a smaller model")


def report(cfg, topology: str = "") -> str:
  """The dry run's report of cfg (a sweep: its last point, whose strong model is the largest)."""
  devices = tpu_devices(topology) if topology else jax.devices()
  points = sweep.expand(cfg)
  cfg = points[-1]
  config_lib.validate(cfg, len(devices), devices)
  try:
    compiled, program, mesh = compile_program(cfg, devices)
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" in str(e):
      mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor, devices=devices)
      knobs = settings.get(cfg.experiment).program(cfg, mesh).knobs
      raise DoesNotFit(f"{str(e).splitlines()[0]}; {what_fits(cfg, devices, knobs)}") from None
    raise
  mem = compiled.memory_analysis()
  peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes +
          mem.temp_size_in_bytes)
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  kind = topology or f"{jax.devices()[0].platform} x{len(mesh.devices.flat)}"
  flops = (program.flops / mesh.devices.size if program.flops is not None else
           float(cost.get("flops", float("nan"))))
  rows = [
      ("program", program.what + (f" (sweep point {len(points)} of {len(points)})"
                                  if len(points) > 1 else "")),
      ("model", f"{program.n_params:,} parameters, {cfg.train.dtype} compute"),
      ("devices", f"{kind}; mesh {dict(mesh.shape)}"),
      ("batch", str(list(program.batch))),
      ("parameters / device", f"{_per_device_bytes(program.params) / GIB:.3f} GiB"),
      ("optimizer state / device", f"{_per_device_bytes(program.opt_state) / GIB:.3f} GiB"
       if program.opt_state is not None else "none (a forward only)"),
      ("program arguments / device", f"{mem.argument_size_in_bytes / GIB:.3f} GiB"),
      ("program outputs / device", f"{mem.output_size_in_bytes / GIB:.3f} GiB "
                                   f"(aliased with donated inputs: "
                                   f"{mem.alias_size_in_bytes / GIB:.3f} GiB)"),
      ("temporaries / device", f"{mem.temp_size_in_bytes / GIB:.3f} GiB"),
      ("peak estimate / device", f"{peak / GIB:.3f} GiB"),
      ("model FLOPs / step / device", f"{flops:.3e}"),
      ("XLA cost analysis FLOPs", f"{cost.get('flops', float('nan')):.3e} (counts a scanned "
                                  "layer once)"),
  ]
  chip = CHIPS.get(topology.split(":")[0]) if topology else None
  if chip is not None:
    r = roofline(flops, program.n_params, dict(mesh.shape), program.remat, chip,
                 accum=program.accum, train=program.opt_state is not None)
    rows += [
        ("HBM per chip", f"{chip['hbm'] / GIB:.1f} GiB: "
                         f"{'fits' if peak <= chip['hbm'] else 'DOES NOT FIT'}"),
        ("roofline step time", f"{r['step_s'] * 1e3:.1f} ms ({r['bound']}-bound; compute "
                               f"{r['compute_s'] * 1e3:.1f} ms, HBM {r['hbm_s'] * 1e3:.1f} ms, "
                               f"ICI {r['ici_s'] * 1e3:.1f} ms)"),
        ("MFU bound", f"{r['mfu_bound']:.2f}"),
    ]
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
