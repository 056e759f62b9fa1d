"""Will it fit? Compile the strong model's train step for the config's mesh without training.

Lowers and compiles `train_step` on abstract inputs (no parameters are created) and prints per
device: parameters, optimizer state, the compiled program's arguments, outputs and temporaries,
and FLOPs per step. The mesh is the config's, over this machine's devices, over N fake CPU
devices (--fake_devices), or over a TPU slice that jax describes on a CPU (--topology=v5e:4x4,
with libtpu installed): compiling for a pod slice from a laptop.
"""
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from w2s_jax import config as config_lib, losses, sharding, train
from w2s_jax.data import dataset as data_lib
from w2s_jax.data.tokenizers import ByteTokenizer
from w2s_jax.models import display_name, from_spec, param_count

GIB = 2 ** 30


# Per chip: peak bf16 FLOP/s, HBM bytes, HBM bytes/s, bidirectional ICI bytes/s (Cloud TPU
# documentation: docs.cloud.google.com/tpu/docs/v5e, v5p-training, v6e).
CHIPS = {
    "v5e": dict(flops=197e12, hbm=16e9, hbm_bw=819e9, ici_bw=400e9),
    "v5p": dict(flops=459e12, hbm=95e9, hbm_bw=2765e9, ici_bw=1200e9),
    "v6e": dict(flops=918e12, hbm=32e9, hbm_bw=1638e9, ici_bw=800e9),
}


def roofline(flops: float, params: int, mesh_shape: dict, remat: str, chip: dict,
             accum: int = 1, compute_bytes: int = 2) -> dict:
  """A lower bound on one train step's time per device, from three ceilings that overlap at
  best: compute (`flops` per device at peak); HBM traffic (each micro-batch's passes, forward,
  backward and the remat forward, read the device's 1/tensor of the weights in compute dtype;
  the optimizer reads and writes its fsdp x tensor shard of fp32 parameters, gradients and two
  Adam moments, 28 bytes a parameter); ICI traffic (those reads all-gathered over fsdp, and a
  reduce-scatter of fp32 gradients over the data and fsdp devices). Activations are left out:
  a bound, not a prediction. The MFU bound is compute time over the bound."""
  t, f = mesh_shape.get("tensor", 1), mesh_shape.get("fsdp", 1)
  m = math.prod(mesh_shape.values()) // t  # devices holding other shards of one tensor slice
  reads = (3 if remat == "full" else 2) * accum * params * compute_bytes / t
  compute = flops / chip["flops"]
  hbm = (reads + 28 * params / (f * t)) / chip["hbm_bw"]
  ici = (reads * (f - 1) / f + 4 * params / t * (m - 1) / m) / chip["ici_bw"]
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


def compile_train_step(cfg, devices=None):
  """(compiled step, abstract state, model config) for the strong model of `cfg`."""
  mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor, devices=devices)
  vocab = ByteTokenizer.vocab_size if cfg.tokenizer == "byte" else 0
  mc = from_spec(cfg.strong, vocab or 50257, fetch=False)  # no Hub checkpoint is fetched
  tr = train.Trainer(mc, cfg.num_classes or 2, mesh, sharding.check_rules(cfg.rules),
                     dtype=cfg.train.dtype, remat=cfg.strong.remat, attention=cfg.train.attention)
  tx, schedule = train.make_optimizer(cfg.train, train.learning_rate(cfg.train, mc), 1000)
  loss = cfg.losses[0]
  step_fn, init_fn, batch_shardings = tr.make_train_step(
      tx, schedule, losses.get(loss), cfg.loss[loss].to_dict() if loss in cfg.loss else {}, 1000)
  params = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        tr.abstract_params(), tr.param_shardings)
  state = jax.eval_shape(init_fn, params)
  accum = cfg.train.batch_size // (cfg.train.micro_batch_size or cfg.train.batch_size)
  micro = cfg.train.batch_size // accum
  length = data_lib.bucket_length(cfg.max_len, cfg.train.buckets)
  shapes = {"tokens": ((accum, micro, length), jnp.int32), "lengths": ((accum, micro), jnp.int32),
            "targets": ((accum, micro, tr.num_classes), jnp.float32)}
  batch = {k: jax.ShapeDtypeStruct(s, d, sharding=batch_shardings[k]) for k, (s, d) in
           shapes.items()}
  return step_fn.lower(state, batch).compile(), state, mc, mesh, (accum, micro, length)


def _fits(cfg, devices) -> bool:
  try:
    compile_train_step(cfg, devices)
    return True
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" in str(e):
      return False
    raise


def what_fits(cfg, devices) -> str:
  """The change that makes a train step that does not fit fit, found by compiling: full remat
  first, then the largest micro-batch (gradient accumulation over the same optimizer batch)
  that halving finds; or the sentence that none does."""
  cfg = cfg.copy_and_resolve_references()
  tried = []
  if cfg.strong.remat != "full":
    cfg.strong.remat = "full"
    if _fits(cfg, devices):
      return "it fits with --config.strong.remat=full"
    tried.append("strong.remat=full")
  micro = cfg.train.micro_batch_size or cfg.train.batch_size
  dp = sharding.data_parallel_size(sharding.check_rules(cfg.rules), dict(zip(
      sharding.MESH_AXES, sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor,
                                             devices=devices).devices.shape)))
  while micro // 2 >= dp and (micro // 2) % dp == 0:
    micro //= 2
    cfg.train.micro_batch_size = micro
    if _fits(cfg, devices):
      return ("it fits with " + " ".join(f"--config.{t}" for t in tried) +
              f" --config.train.micro_batch_size={micro} (the largest micro-batch that does)"
              ).replace("with  ", "with ")
  return (f"nothing fits this slice, down to micro-batches of {micro} with full remat: use more "
          "chips, a larger fsdp or tensor axis, LoRA, or a smaller model")


def report(cfg, topology: str = "") -> str:
  devices = tpu_devices(topology) if topology else jax.devices()
  config_lib.validate(cfg, len(devices), devices)
  try:
    compiled, state, mc, mesh, batch_shape = compile_train_step(cfg, devices)
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" in str(e):
      raise DoesNotFit(f"{str(e).splitlines()[0]}; {what_fits(cfg, devices)}") from None
    raise
  mem = compiled.memory_analysis()
  peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes +
          mem.temp_size_in_bytes)
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  kind = topology or f"{jax.devices()[0].platform} x{len(mesh.devices.flat)}"
  rows = [
      ("model", f"{display_name(cfg.strong)}: {param_count(mc):,} parameters, "
                f"{cfg.train.dtype} compute"),
      ("devices", f"{kind}; mesh {dict(mesh.shape)}"),
      ("batch [accum, micro, length]", str(list(batch_shape))),
      ("parameters / device", f"{_per_device_bytes(state['params']) / GIB:.3f} GiB"),
      ("optimizer state / device", f"{_per_device_bytes(state['opt_state']) / GIB:.3f} GiB"),
      ("program arguments / device", f"{mem.argument_size_in_bytes / GIB:.3f} GiB"),
      ("program outputs / device", f"{mem.output_size_in_bytes / GIB:.3f} GiB "
                                   f"(aliased with donated inputs: "
                                   f"{mem.alias_size_in_bytes / GIB:.3f} GiB)"),
      ("temporaries / device", f"{mem.temp_size_in_bytes / GIB:.3f} GiB"),
      ("peak estimate / device", f"{peak / GIB:.3f} GiB"),
      ("model FLOPs / step / device", f"{model_flops(mc, math.prod(batch_shape), batch_shape[-1], cfg.strong.remat) / mesh.devices.size:.3e}"),
      ("XLA cost analysis FLOPs", f"{cost.get('flops', float('nan')):.3e} (counts a scanned "
                                  "layer once)"),
  ]
  chip = CHIPS.get(topology.split(":")[0]) if topology else None
  if chip is not None:
    r = roofline(model_flops(mc, math.prod(batch_shape), batch_shape[-1], cfg.strong.remat) /
                 mesh.devices.size, param_count(mc), dict(mesh.shape), cfg.strong.remat, chip,
                 accum=batch_shape[0])
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
