"""The settings an experiment can be (config key `experiment`): every module of this package is
one, registered by its file name, so that a new setting is a new module here (beside its
builder, its config file and its docs) and nothing else changes. A setting module declares:

  ROWS                    the `setting` field of its result rows (what its tables select)
  defaults(c)             adds its own config keys to the shared defaults (config.defaults)
  validate(cfg, devices)  checks its own keys; config.validate runs it for its experiments only
  needs(cfg)              {asset name (w2s_jax/assets.py): the config key that needs it}
  build(cfg, rt, graph)   adds its stages to the graph; returns a builder with check_data(),
                          checkpoints() [(init, trainer)] and rows() [result rows]
  tables(runs, pool, baselines) -> [text]   its part of the report, from its rows
  figures(pool, runs, out) -> [png paths]   its own figures (matplotlib imported inside)
"""
import importlib
import pkgutil

from w2s_jax.errors import ConfigError

SETTINGS = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))


def get(name: str):
  """The module of setting `name`."""
  if name not in SETTINGS:
    raise ConfigError(f"config key 'experiment': unknown setting {name!r}; known: "
                      f"{' | '.join(SETTINGS)}")
  return importlib.import_module(f"{__name__}.{name}")


def every():
  """Every setting module, in name order."""
  return [get(name) for name in SETTINGS]
