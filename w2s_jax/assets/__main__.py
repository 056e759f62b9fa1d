"""`python -m w2s_jax.assets`: the assets every config variant needs, and fetching them.

  python -m w2s_jax.assets                      the table: source, sha256, licence, users
  python -m w2s_jax.assets --fetch [CONFIG...]  fetch what these configs (default: all) need
"""
import argparse
import glob
import importlib.util
import os
import sys

from w2s_jax import fetch, sweep
from w2s_jax.assets import ASSETS, AssetError, _source, cached, ensure, needed


# ----------------------------------------------------------------------------------- command
def config_dir() -> str:
  here = os.path.dirname(os.path.abspath(__file__))  # w2s_jax/assets
  return os.path.join(os.path.dirname(os.path.dirname(here)), "configs")


def load_config(spec: str) -> list:
  """`configs/nlp.py:reproduce` (or nlp:reproduce) -> its configs (every point of its sweep)."""
  return sweep.expand(config_of(spec))


def config_of(spec: str):
  """`configs/nlp.py:reproduce` (or nlp:reproduce) -> its ConfigDict."""
  file, _, variant = spec.partition(":")
  if not file.endswith(".py"):
    file = os.path.join(config_dir(), file + ".py")
  mod_spec = importlib.util.spec_from_file_location("w2s_config", file)
  if mod_spec is None or not os.path.isfile(file):
    raise AssetError(f"--fetch {spec}: no config file {file}")
  module = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()


def every_variant() -> list:
  """Every `configs/NAME.py:VARIANT` of the repository's configs (their VARIANTS)."""
  out = []
  for file in sorted(glob.glob(os.path.join(config_dir(), "*.py"))):
    mod_spec = importlib.util.spec_from_file_location("w2s_config", file)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    name = os.path.splitext(os.path.basename(file))[0]
    out += [f"{name}:{v}" for v in getattr(module, "VARIANTS", ())]
  return out


def table(users: dict) -> str:
  w = max(len(n) for n in ASSETS)  # the widest name
  f = max(len(a.file) for a in ASSETS.values())
  head = (f"{'asset':{w}} {'source':40} {'file':{f}} {'MB':>5} {'cached':6} "
          "sha256 / licence / used by")
  lines = [head, "-" * len(head)]
  for name, a in ASSETS.items():
    size = f"{a.size / 1e6:5.1f}" if a.size else "?"
    lines.append(f"{name:{w}} {_source(name)[:40]:40} {a.file:{f}} {size:>5} "
                 f"{'yes' if cached(name) else 'no':6} {a.sha256}")
    lines.append(f"{'':{w}} {a.what}; licence: {a.licence}")
    lines.append(f"{'':{w}} used by: {', '.join(users.get(name, ())) or 'no config variant'}")
  lines.append(f"cache: {fetch.cache_dir('assets')} (W2S_CACHE); staged package files: "
               f"{os.environ.get('W2S_ASSET_DIR') or 'none (W2S_ASSET_DIR)'}")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m w2s_jax.assets", description=__doc__.split("\n")[0])
  p.add_argument("--fetch", nargs="*", default=None, metavar="CONFIG[:VARIANT]",
                 help="fetch every asset these configs need (no value: every config variant)")
  args = p.parse_args(argv)
  try:
    if args.fetch is not None:
      for spec in args.fetch or every_variant():
        for name, where in ensure(load_config(spec)).items():
          print(f"{spec}: {name} -> {where}")
      return 0
    users = {}
    for spec in every_variant():
      for name in needed(load_config(spec)):
        users.setdefault(name, []).append(spec)
    print(table(users))
  except AssetError as e:
    print(f"asset error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
