"""BIG-bench tasks, for users who hold the `bigbench==1.0.0` sdist (358 MB; PyPI no longer serves
it, so no default config, test or README command reads these tasks).

W2S_BIGBENCH_SDIST=PATH (not checked) or W2S_ASSET_DIR=FOLDER holding bigbench-1.0.0.tar.gz
(sha256-checked) points at it; the task files are streamed out once into the asset cache.
Each task becomes binary and balanced like the paper's tasks; BIG-bench has no test split, so
`task.test_frac` of the rows are held out.
"""
import functools
import json


from w2s_jax import assets
from w2s_jax.data.nlp_tasks import CHOICE, answer_pair, balanced_by, choice_pair
from w2s_jax.data.tasks import DataError, Task as _Task, register

MEMBERS = assets.BIGBENCH_TASKS


def task_file(name: str) -> str:
  """The task.json of BIG-bench task `name`, from the local sdist (asset "bigbench")."""
  if name not in MEMBERS:
    raise DataError(f"BIG-bench task {name!r} is not one of the tasks read ({MEMBERS})")
  return assets.path("bigbench", assets.BIGBENCH.format(name),
                     "--config.task.name (another task)")


def Task(load, fmt, labels, zero_shot=None):  # noqa: N802  (every BIG-bench task is balanced)
  return _Task(load, fmt, labels, balance=True, zero_shot=zero_shot, assets=("bigbench",))


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
  return answer_pair(r, cfg, r["input"].strip(), best, others)


def hhh_loader(cfg):
  rows = []
  for part in ("harmless", "helpful", "honest", "other"):
    rows += loader(f"hhh_alignment/{part}")(cfg)["train"]
  return {"train": rows}


def _pairwise(load, choices=None):
  return _Task(load, functools.partial(pairwise_choice, choices=choices), lambda c: BINARY,
               "pairwise", balance=True, assets=("bigbench",))


BINARY = ("false", "true")
# Zero-shot prompts (w2s_jax/zero_shot.py): appended text, then one answer word per class.
SENTIMENT = ("\nQuestion: Is the sentiment of this sentence positive or negative?\nAnswer:",
             (" negative", " positive"))
YES_NO = ("\nAnswer (Yes or No):", (" No", " Yes"))
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
    "bigbench-multiemo-sentence-pairs": _pairwise(balanced_by(_best,
        loader("multiemo/all_sentence_en", keep_choices("positive", "negative"))),
        ("positive", "negative")),
    "bigbench-hhh_alignment": _pairwise(hhh_loader),  # 221 pairs: an extra evaluation set
}
register(BIGBENCH_TASKS)
