"""A sweep: the configs of one invocation, one per point of its grid (w2s_jax/experiment.py)."""
import itertools

from w2s_jax import options
from w2s_jax.errors import ConfigError


# Keys one invocation fixes for all its grid points: every point runs on the first point's
# mesh and rules, and `seeds` and `sweep` are the grid's own axes.
PER_INVOCATION = ("mesh", "rules", "experiment", "seeds", "sweep")


def set_key(cfg, dotted: str, value) -> None:
  """cfg's key `dotted` (a.b.c) set to value; an unknown key names the grid."""
  node, *path = cfg, *dotted.split(".")
  for part in path[:-1]:
    if part not in node:
      raise ConfigError(f"config key 'sweep.grid': unknown key {dotted!r}")
    node = node[part]
  if path[-1] not in node:
    raise ConfigError(f"config key 'sweep.grid': unknown key {dotted!r}")
  node[path[-1]] = value


def expand(cfg) -> list:
  """The configs of cfg's sweep: every pair i < j of `sweep.models` (weak i, strong j; the
  templates cfg.weak and cfg.strong give the other model settings) times every point of
  `sweep.grid` (("dotted.key", (values...)), ...). Without a sweep: [cfg]."""
  sw = cfg.sweep
  pairs = list(itertools.combinations(sw.models, 2)) or [None]
  grid = [(k, tuple(v)) for k, v in sw.grid]
  for k, values in grid:
    if not values:
      raise ConfigError(f"config key 'sweep.grid': no values for {k!r}")
    if k.split(".")[0] in PER_INVOCATION:
      raise ConfigError(f"config key 'sweep.grid': {k!r} cannot vary by grid point (one "
                        "invocation has one mesh, sharding rules, experiment and seeds): "
                        "run one invocation per value")
  out = []
  for pair in pairs:
    for point in itertools.product(*(v for _, v in grid)):
      c = cfg.copy_and_resolve_references()
      with c.unlocked():
        c.sweep.models, c.sweep.grid = (), ()
        if pair:
          try:
            c.weak, c.strong = (options.model_entry(cfg.weak, pair[0]),
                                options.model_entry(cfg.strong, pair[1]))
          except ConfigError as e:
            raise ConfigError(f"config key 'sweep.models': {e}") from None
        for (k, _), value in zip(grid, point):
          set_key(c, k, value)
      out.append(c)
  return out
