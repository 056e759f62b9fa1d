"""Real tasks with no Hub: BIG-bench task files from the `bigbench==1.0.0` sdist on PyPI.

The sdist (358 MB) is fetched once with `pip download --no-deps`, checked against its pinned
sha256, and the task files below are streamed out of it into ~/.cache/w2s_jax/bigbench (W2S_CACHE);
the sdist is then deleted. W2S_BIGBENCH_SDIST points at a local copy instead (not checked).
Each task becomes binary and balanced like the paper's tasks; BIG-bench has no test split, so
`task.test_frac` of the rows are held out.
"""
import functools
import json
import os
import zlib

import numpy as np

from w2s_jax import fetch
from w2s_jax.data.nlp_tasks import choice_pair, preference_pair
from w2s_jax.data.tasks import DataError, Task as _Task, register

SDIST = "bigbench-1.0.0.tar.gz"
SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
MEMBERS = ("strategyqa", "sports_understanding", "multiemo/all_text_en", "multiemo/all_sentence_en",
           "vitaminc_fact_verification", "social_iqa", "timedial", "checkmate_in_one",
           "hhh_alignment/harmless", "hhh_alignment/helpful", "hhh_alignment/honest",
           "hhh_alignment/other")


def _member(name: str):
  """The task name of a sdist member that is one of MEMBERS' task.json, else None."""
  rel = name.split("/benchmark_tasks/")[-1]
  if rel.endswith("/task.json") and rel[:-len("/task.json")] in MEMBERS:
    return rel[:-len("/task.json")]
  return None


def task_file(name: str) -> str:
  """The cached task.json of BIG-bench task `name` (fetching and extracting on first use)."""
  folder = fetch.cache_dir("bigbench")
  path = os.path.join(folder, name.replace("/", "__") + ".json")
  if os.path.exists(path):
    return path
  rename = lambda m: _member(m).replace("/", "__") + ".json"  # noqa: E731
  wanted = lambda m: _member(m) is not None  # noqa: E731
  local = os.environ.get("W2S_BIGBENCH_SDIST")
  if local:
    fetch.extract(local, folder, wanted, rename)
  else:
    fetch.pypi_members("bigbench==1.0.0", SDIST, SHA256, folder, wanted, rename)
  if not os.path.exists(path):
    raise FileNotFoundError(f"BIG-bench task {name!r} is not in the sdist")
  return path


def Task(load, fmt, labels, zero_shot=None):  # noqa: N802  (every BIG-bench task is balanced)
  return _Task(load, fmt, labels, balance=True, zero_shot=zero_shot)


def loader(name: str, keep=None):
  def load(cfg):
    with open(task_file(name)) as f:
      examples = json.load(f)["examples"]
    rows = [dict(e, _where=f"bigbench/{name} example {i}") for i, e in enumerate(examples)]
    return {"train": [r for r in rows if keep is None or keep(r)]}
  return load


def _scores(r):
  if not isinstance(r.get("target_scores"), dict) or "input" not in r:
    raise DataError(f"{r.get('_where', '?')}: expected 'input' and 'target_scores'")
  return r["target_scores"]


def _best(r):
  return max(_scores(r), key=_scores(r).get)


def yes_no(positive):
  """A two-choice task; label 1 when the `positive` choice is the right one."""
  return lambda r, cfg, labels: (r["input"].strip(), int(_best(r) == positive))


def keep_choices(*choices):
  return lambda r: _best(r) in choices


def f_multiple_choice(r, cfg, labels):
  answers = list(_scores(r))
  return choice_pair(r, cfg, f"Question: {r['input'].strip()}", answers,
                     answers.index(_best(r)))


def pairwise_choice(r, cfg, labels, choices=None):
  """PAIRWISE from a multiple-choice row: (prompt + best answer, prompt + a random other
  answer, among `choices` if given), in a random order; label 1 when the first is the better
  one."""
  scores = _scores(r)
  best = _best(r)
  others = [a for a in scores if a != best and (choices is None or a in choices)]
  if not others:
    raise DataError(f"{r.get('_where', '?')}: a pair needs at least two choices")
  rng = np.random.default_rng([cfg.format_seed, zlib.crc32(r["_where"].encode()), 1])
  other = others[int(rng.integers(len(others)))]
  prompt = r["input"].strip()
  return preference_pair(r, cfg, f"{prompt}\nAnswer: {best}", f"{prompt}\nAnswer: {other}")


def balanced_answers(load):
  """Rows downsampled (seeded by task.format_seed, order kept) so that every right answer is
  equally common: pairs built from them carry no signal in which answer is preferred
  (multiemo's English sentences are 58% negative)."""
  def balanced(cfg):
    rows = load(cfg)["train"]
    by = {}
    for i, r in enumerate(rows):
      by.setdefault(_best(r), []).append(i)
    n = min(len(v) for v in by.values())
    rng = np.random.default_rng([cfg.format_seed, 2])
    keep = np.sort(np.concatenate([rng.permutation(v)[:n] for v in by.values()]))
    return {"train": [rows[i] for i in keep]}
  return balanced


def hhh_loader(cfg):
  rows = []
  for part in ("harmless", "helpful", "honest", "other"):
    rows += loader(f"hhh_alignment/{part}")(cfg)["train"]
  return {"train": rows}


def _pairwise(load, choices=None):
  return _Task(load, functools.partial(pairwise_choice, choices=choices), lambda c: BINARY,
               "pairwise", balance=True)


BINARY = ("false", "true")
# Zero-shot prompts (w2s_jax/zero_shot.py): appended text, then one answer word per class.
SENTIMENT = ("\nQuestion: Is the sentiment of this sentence positive or negative?\nAnswer:",
             (" negative", " positive"))
YES_NO = ("\nAnswer (Yes or No):", (" No", " Yes"))
CHOICE = ("\nIs this answer right? Answer (Yes or No):", (" No", " Yes"))
BIGBENCH_TASKS = {
    "bigbench-strategyqa": Task(loader("strategyqa"), yes_no("Yes"), lambda c: BINARY, YES_NO),
    "bigbench-sports_understanding": Task(loader("sports_understanding"), yes_no("plausible"),
                                          lambda c: BINARY, ("\nIs this sentence plausible? "
                                                             "Answer (Yes or No):", YES_NO[1])),
    "bigbench-multiemo": Task(loader("multiemo/all_text_en", keep_choices("positive",
                                                                         "negative")),
                              yes_no("positive"), lambda c: BINARY, SENTIMENT),
    "bigbench-multiemo-sentence": Task(loader("multiemo/all_sentence_en", keep_choices(
        "positive", "negative")), yes_no("positive"), lambda c: BINARY, SENTIMENT),
    "bigbench-vitaminc": Task(loader("vitaminc_fact_verification", keep_choices("True", "False")),
                              yes_no("True"), lambda c: BINARY,
                              ("\nQuestion: Is the claim true or false?\nAnswer:",
                               (" false", " true"))),
    "bigbench-social_iqa": Task(loader("social_iqa"), f_multiple_choice, lambda c: BINARY,
                                CHOICE),
    "bigbench-timedial": Task(loader("timedial"), f_multiple_choice, lambda c: BINARY, CHOICE),
    # Preference pairs for reward models (offline): the better vs another answer.
    "bigbench-social_iqa-pairs": _pairwise(loader("social_iqa")),
    "bigbench-timedial-pairs": _pairwise(loader("timedial")),
    # A sentence with its right vs its wrong sentiment (positive / negative only): the one pair
    # task here on which a from-scratch weak reward model learns above chance (BUILD_NOTES).
    # As many sentences of each sentiment: a model that always prefers one answer scores chance.
    "bigbench-multiemo-sentence-pairs": _pairwise(balanced_answers(
        loader("multiemo/all_sentence_en", keep_choices("positive", "negative"))),
        ("positive", "negative")),
    "bigbench-hhh_alignment": _pairwise(hhh_loader),  # 221 pairs: an extra evaluation set
}
register(BIGBENCH_TASKS)
