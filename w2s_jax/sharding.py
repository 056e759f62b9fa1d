"""Device mesh and logical-to-mesh sharding rules.

Rules are ORDERED data: a tuple of (logical axis name, mesh axes) pairs. For each dimension of a
tensor the first rule for its logical name whose mesh axes are all still unused in that tensor
(and whose size divides the dimension) wins; no mesh axis is ever used twice in one tensor.
A logical name without a usable rule is replicated.
"""
import math
from typing import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# FSDP by default: the model dimension of every matrix sharded over `fsdp`, the wide dimension
# (mlp, heads, vocab) over `tensor`. Fallbacks come later in the list.
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("embed", "fsdp"),
    ("vocab", "fsdp"),  # when embed could not take fsdp (e.g. d_model not divisible)
    ("mlp", "fsdp"),
    ("layers", None),
    ("pos", None),
    ("head_dim", None),
    ("norm", None),
    ("classes", None),
    ("length", None),
)


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1, devices=None) -> jax.sharding.Mesh:
  """A ("data", "fsdp", "tensor") mesh; one axis may be -1 to take the remaining devices."""
  devices = list(jax.devices() if devices is None else devices)
  shape = [data, fsdp, tensor]
  if shape.count(-1) > 1:
    raise ValueError(f"mesh: at most one axis may be -1, got {dict(zip(MESH_AXES, shape))}")
  if -1 in shape:
    rest = math.prod(s for s in shape if s != -1)
    if len(devices) % rest:
      raise ValueError(f"mesh: {len(devices)} devices do not divide by {rest}")
    shape[shape.index(-1)] = len(devices) // rest
  if math.prod(shape) != len(devices):
    raise ValueError(f"mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices, "
                     f"{len(devices)} available")
  return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def _as_tuple(axes):
  if axes is None:
    return ()
  return (axes,) if isinstance(axes, str) else tuple(axes)


def resolve(logical: Sequence[str | None], shape: Sequence[int], rules, mesh_shape: dict) -> P:
  """PartitionSpec for one tensor: first matching rule per dimension, no mesh axis twice."""
  used, spec = set(), []
  for name, dim in zip(logical, shape):
    chosen = None
    for rule_name, mesh_axes in rules:
      if rule_name != name:
        continue
      axes = _as_tuple(mesh_axes)
      size = math.prod(mesh_shape[a] for a in axes)
      if used.intersection(axes) or dim % size:
        continue
      chosen = axes
      break
    if chosen:
      used.update(chosen)
      spec.append(chosen[0] if len(chosen) == 1 else chosen)
    else:
      spec.append(None)
  return P(*spec)


def check_rules(rules):
  """Validate rule data (names are strings, mesh axes known); returns rules as a tuple."""
  out = []
  for i, rule in enumerate(rules):
    if len(rule) != 2 or not isinstance(rule[0], str):
      raise ValueError(f"config.rules[{i}]: expected (logical_name, mesh_axes), got {rule!r}")
    for axis in _as_tuple(rule[1]):
      if axis not in MESH_AXES:
        raise ValueError(f"config.rules[{i}]: unknown mesh axis {axis!r}; known: {MESH_AXES}")
    out.append((rule[0], rule[1] if rule[1] is None or isinstance(rule[1], str)
                else tuple(rule[1])))
  return tuple(out)


def logical_axes(state: nnx.State) -> dict:
  """Pure-dict tree of each parameter's logical axis names."""
  out = {}
  for path, var in nnx.to_flat_state(state):
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = tuple(var.get_metadata()["logical_axes"])
  return out


def tree_specs(axes_tree, shapes_tree, rules, mesh) -> dict:
  """PartitionSpecs for a tree of arrays given a matching tree of logical axes."""
  mesh_shape = dict(mesh.shape)
  return jax.tree.map(lambda axes, x: resolve(axes, x.shape, rules, mesh_shape),
                      axes_tree, shapes_tree, is_leaf=lambda x: isinstance(x, tuple))


def named(mesh, specs):
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, P))


def batch_spec(rules, mesh, ndim: int, batch_dim: int = 0) -> P:
  """Spec of a batch array: `batch_dim` over the mesh axes of the "batch" rule, rest replicated."""
  axes = next(_as_tuple(m) for n, m in rules if n == "batch")
  spec = [None] * ndim
  spec[batch_dim] = axes if len(axes) != 1 else axes[0]
  return P(*spec)


def data_parallel_size(rules, mesh_shape: dict) -> int:
  """How many ways the batch dimension is split."""
  axes = next((_as_tuple(m) for n, m in rules if n == "batch"), ())
  return math.prod(mesh_shape[a] for a in axes)


def per_device_bytes(tree) -> list[int]:
  """Bytes each device holds of a tree of (sharded) arrays: shows that FSDP really shards."""
  counts = {}
  for x in jax.tree.leaves(tree):
    for shard in x.addressable_shards:
      counts[shard.device] = counts.get(shard.device, 0) + shard.data.nbytes
  return [counts[d] for d in sorted(counts, key=lambda d: d.id)]


def local_rows(named_sharding, global_shape, dim: int) -> np.ndarray:
  """Indices along `dim` that this process's devices hold: the rows it loads and feeds."""
  spans = sorted({(s[dim].start or 0, global_shape[dim] if s[dim].stop is None else s[dim].stop)
                  for s in named_sharding.addressable_devices_indices_map(global_shape).values()})
  rows = np.concatenate([np.arange(a, b) for a, b in spans])
  if not (np.diff(rows) == 1).all():
    raise ValueError(f"this process's batch rows are not contiguous ({spans}): reorder the mesh "
                     "so that each host's devices are adjacent along the batch axes")
  return rows


def host_array(x) -> np.ndarray:
  """The whole of a (possibly sharded, possibly multi-process) array on this host."""
  if jax.process_count() == 1:
    return np.asarray(jax.device_get(x))
  from jax.experimental import multihost_utils  # noqa: PLC0415
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
