"""The paper's binary NLP tasks (and its follow-ups'), as Hub loaders with formatters.

Each formatter turns one row of the task's Hugging Face schema into (text, label). Multiple-choice
tasks become binary (question, candidate answer) pairs: with probability 1/2 the correct answer
(label 1), else one wrong answer drawn at random (label 0), from a per-row random generator, so a
task is balanced 50/50 in expectation and deterministic for `task.format_seed`. No formatter
shows the answer, its letter or its position for one class only (the leaks of public code bases;
`python -m w2s_jax.data.leak_check` measures what remains).

Offline, `task.train_file` / `task.test_file` (JSONL in the same schema) replace the Hub.
The Hub ids are today's; datasets that only had a loading script (which `datasets` no longer
runs) load from their parquet conversion with `task.hf_revision=refs/convert/parquet`. The live
Hub was not reachable where this was written: the formatters are tested on hand-written rows.
The chat tasks (anthropic_hh, ultrafeedback) are plain "User: ... Assistant: ..." text, or with
`task.chat_template` the instruct model's own chat format (w2s_jax/data/chat.py).
"""
import zlib

import numpy as np

from w2s_jax.data import chat
from w2s_jax.data.tasks import DataError, Task, preference_pair, read_jsonl, register, row_rng

BINARY = ("false", "true")


def hub_loader(path, name=None, train="train", test="validation", keep=None):
  """Load `path`/`name` from the Hub (or the task's local JSONL files in the same schema)."""

  def load(cfg):
    if cfg.train_file:
      out = {"train": read_jsonl(cfg.train_file)}
      if cfg.test_file:
        out["test"] = read_jsonl(cfg.test_file)
    else:
      import datasets  # noqa: PLC0415
      out = {}
      for ours, split in (("train", train), ("test", test)):
        ds = datasets.load_dataset(path, name, split=split, revision=cfg.hf_revision or None)
        out[ours] = [dict(r, _where=f"{path}[{split}] row {i}") for i, r in enumerate(ds)]
    if keep:
      out = {k: [r for r in rows if keep(r)] for k, rows in out.items()}
    return out

  return load


def _get(row, *keys):
  try:
    for k in keys:
      row = row[k]
    return row
  except (KeyError, IndexError, TypeError):
    raise DataError(f"{row.get('_where', '?') if isinstance(row, dict) else '?'}: missing field "
                    f"{'.'.join(map(str, keys))}") from None


def choice_pair(row, cfg, prompt, answers, correct):
  """Binary pair from a multiple-choice row: the correct answer (1) or a random wrong one (0)."""
  if not 0 <= correct < len(answers) or len(answers) < 2:
    raise DataError(f"{row.get('_where', '?')}: correct answer {correct} not among "
                    f"{len(answers)} choices")
  rng = row_rng(row, cfg)
  label = int(rng.random() < 0.5)
  wrong = [a for i, a in enumerate(answers) if i != correct]
  answer = answers[correct] if label else wrong[int(rng.integers(len(wrong)))]
  return f"{prompt}\nAnswer: {answer}", label


def f_sciq(r, cfg, labels):
  answers = [_get(r, "correct_answer")] + [_get(r, f"distractor{i}") for i in (1, 2, 3)]
  return choice_pair(r, cfg, f"Question: {_get(r, 'question')}", answers, 0)


def f_boolq(r, cfg, labels):
  return f"Passage: {_get(r, 'passage')}\nQuestion: {_get(r, 'question')}?", int(_get(r, "answer"))


def f_cosmos_qa(r, cfg, labels):
  answers = [_get(r, f"answer{i}") for i in range(4)]
  return choice_pair(r, cfg, f"Context: {_get(r, 'context')}\nQuestion: {_get(r, 'question')}",
                     answers, int(_get(r, "label")))


def f_amazon_polarity(r, cfg, labels):
  return f"{_get(r, 'title')}\n{_get(r, 'content')}", int(_get(r, "label"))


def f_anli(r, cfg, labels):  # neutral rows are dropped by the loader: entailment (1) vs not (0)
  return (f"Premise: {_get(r, 'premise')}\nHypothesis: {_get(r, 'hypothesis')}",
          int(_get(r, "label") == 0))


def f_cola(r, cfg, labels):
  return f"Sentence: {_get(r, 'sentence')}\nIs this sentence grammatical?", int(_get(r, "label"))


def f_dream(r, cfg, labels):
  choices = list(_get(r, "choice"))
  if _get(r, "answer") not in choices:
    raise DataError(f"{r.get('_where', '?')}: answer not among the choices")
  prompt = "\n".join(_get(r, "dialogue")) + f"\nQuestion: {_get(r, 'question')}"
  return choice_pair(r, cfg, prompt, choices, choices.index(r["answer"]))


def f_ethics_commonsense(r, cfg, labels):  # label 1 = the act is clearly wrong
  return f"{_get(r, 'input')}\nIs this acceptable?", 1 - int(_get(r, "label"))


def f_ethics_deontology(r, cfg, labels):
  return (f"Scenario: {_get(r, 'scenario')}\nExcuse: {_get(r, 'excuse')}\nIs the excuse "
          "reasonable?", int(_get(r, "label")))


def f_ethics_justice(r, cfg, labels):
  return f"{_get(r, 'scenario')}\nIs this reasonable?", int(_get(r, "label"))


def f_ethics_virtue(r, cfg, labels):
  scenario, _, trait = _get(r, "scenario").partition(" [SEP] ")
  return f"{scenario}\nDoes this show the trait '{trait}'?", int(_get(r, "label"))


def f_hellaswag(r, cfg, labels):
  return choice_pair(r, cfg, f"Context: {_get(r, 'ctx')}", list(_get(r, "endings")),
                     int(_get(r, "label")))


def f_mc_taco(r, cfg, labels):
  return (f"{_get(r, 'sentence')}\nQuestion: {_get(r, 'question')}\nAnswer: {_get(r, 'answer')}",
          int(_get(r, "label")))


def f_multirc(r, cfg, labels):
  return (f"{_get(r, 'paragraph')}\nQuestion: {_get(r, 'question')}\nAnswer: {_get(r, 'answer')}",
          int(_get(r, "label")))


def _lettered(r, stem, choices_key="choices"):
  letters = list(_get(r, choices_key, "label"))
  if _get(r, "answerKey") not in letters:
    raise DataError(f"{r.get('_where', '?')}: answerKey {r['answerKey']!r} not in {letters}")
  return stem, list(_get(r, choices_key, "text")), letters.index(r["answerKey"])


def f_openbookqa(r, cfg, labels):
  return choice_pair(r, cfg, *_lettered(r, f"Question: {_get(r, 'question_stem')}"))


def f_quartz(r, cfg, labels):
  return choice_pair(r, cfg, *_lettered(r, f"{_get(r, 'para')}\nQuestion: {_get(r, 'question')}"))


def f_paws(r, cfg, labels):
  return (f"Sentence 1: {_get(r, 'sentence1')}\nSentence 2: {_get(r, 'sentence2')}\n"
          "Are they paraphrases?", int(_get(r, "label")))


def f_piqa(r, cfg, labels):
  return choice_pair(r, cfg, f"Goal: {_get(r, 'goal')}", [_get(r, "sol1"), _get(r, "sol2")],
                     int(_get(r, "label")))


def f_quail(r, cfg, labels):
  return choice_pair(r, cfg, f"{_get(r, 'context')}\nQuestion: {_get(r, 'question')}",
                     list(_get(r, "answers")), int(_get(r, "correct_answer_id")))


def f_social_i_qa(r, cfg, labels):
  answers = [_get(r, f"answer{x}") for x in "ABC"]
  return choice_pair(r, cfg, f"{_get(r, 'context')}\nQuestion: {_get(r, 'question')}", answers,
                     int(_get(r, "label")) - 1)


def f_sst2(r, cfg, labels):
  return _get(r, "sentence"), int(_get(r, "label"))


def f_wic(r, cfg, labels):
  return (f"Sentence 1: {_get(r, 'sentence1')}\nSentence 2: {_get(r, 'sentence2')}\nDoes "
          f"'{_get(r, 'word')}' mean the same in both?", int(_get(r, "label")))


def f_twitter(r, cfg, labels):
  return _get(r, "text"), int(_get(r, "feeling"))


def balanced_by(answer, load):
  """`load` with its rows downsampled (seeded by task.format_seed, order kept) so that every
  `answer(row)` is equally common: pairs built from them carry no signal in which answer is
  preferred (multiemo's English sentences are 58% negative, VADER's 54% positive)."""
  def balanced(cfg):
    rows = load(cfg)["train"]
    by = {}
    for i, r in enumerate(rows):
      by.setdefault(answer(r), []).append(i)
    n = min(len(v) for v in by.values())
    rng = np.random.default_rng([cfg.format_seed, 2])
    keep = np.sort(np.concatenate([rng.permutation(v)[:n] for v in by.values()]))
    return {"train": [rows[i] for i in keep]}
  return balanced


def answer_pair(row, cfg, prompt: str, right: str, wrong: list):
  """PAIRWISE: prompt + the right answer vs prompt + one of the `wrong` answers, drawn per row
  and task.format_seed, in a random order (preference_pair)."""
  rng = np.random.default_rng([cfg.format_seed, zlib.crc32(row["_where"].encode()), 1])
  other = wrong[int(rng.integers(len(wrong)))]
  return preference_pair(row, cfg, f"{prompt}\nAnswer: {right}", f"{prompt}\nAnswer: {other}")


def _chat_template(cfg):
  """The template of `task.chat_template` (None: plain text, the default)."""
  option = getattr(cfg, "chat_template", "")
  return chat.resolve(option) if option else None


def f_anthropic_hh(r, cfg, labels):
  chosen, rejected = _get(r, "chosen"), _get(r, "rejected")
  if template := _chat_template(cfg):
    where = r.get("_where", "?")
    chosen, rejected = chat.pair(template, chat.hh_messages(chosen, where),
                                 chat.hh_messages(rejected, where), where, strict=False)
  return preference_pair(r, cfg, chosen, rejected)


def _last_turn(messages, where):
  """A chat transcript (list of {"role", "content"}) as plain text."""
  if not isinstance(messages, list) or not messages:
    raise DataError(f"{where}: expected a non-empty list of chat messages")
  return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def f_ultrafeedback(r, cfg, labels):
  """HuggingFaceH4/ultrafeedback_binarized: chat transcripts `chosen` and `rejected`."""
  where = r.get("_where", "?")
  if template := _chat_template(cfg):  # one templated prompt, each completion as the last turn
    return preference_pair(r, cfg, *chat.pair(template, chat.messages(_get(r, "chosen"), where),
                                              chat.messages(_get(r, "rejected"), where), where))
  return preference_pair(r, cfg, _last_turn(_get(r, "chosen"), where),
                         _last_turn(_get(r, "rejected"), where))


def _binary(load, fmt, kind="classification", zero_shot=None):
  return Task(load, fmt, lambda cfg: BINARY, kind, balance=True, zero_shot=zero_shot)


# Zero-shot prompts (the text ends with the task's question, or is a review): label 1 = yes.
YES_NO = ("\nAnswer (Yes or No):", (" No", " Yes"))
CHOICE = ("\nIs this answer right? Answer (Yes or No):", (" No", " Yes"))  # (question, answer)
SENTIMENT = ("\nQuestion: Is the sentiment of this text positive or negative?\nAnswer:",
             (" negative", " positive"))


PAPER_TASKS = {
    "sciq": _binary(hub_loader("allenai/sciq", test="test"), f_sciq),
    "boolq": _binary(hub_loader("google/boolq"), f_boolq, zero_shot=YES_NO),
    "cosmos_qa": _binary(hub_loader("allenai/cosmos_qa"), f_cosmos_qa),
    "amazon_polarity": _binary(hub_loader("fancyzhx/amazon_polarity", test="test"),
                               f_amazon_polarity, zero_shot=SENTIMENT),
    "anli-r2": _binary(hub_loader("facebook/anli", train="train_r2", test="test_r2",
                                  keep=lambda r: r.get("label") != 1), f_anli),
    "cola": _binary(hub_loader("nyu-mll/glue", "cola"), f_cola, zero_shot=YES_NO),
    "dream": _binary(hub_loader("dataset-org/dream", test="test"), f_dream),
    "ethics-commonsense": _binary(hub_loader("hendrycks/ethics", "commonsense", test="test"),
                                  f_ethics_commonsense),
    "ethics-deontology": _binary(hub_loader("hendrycks/ethics", "deontology", test="test"),
                                 f_ethics_deontology),
    "ethics-justice": _binary(hub_loader("hendrycks/ethics", "justice", test="test"),
                              f_ethics_justice),
    "ethics-virtue": _binary(hub_loader("hendrycks/ethics", "virtue", test="test"),
                             f_ethics_virtue),
    "hellaswag": _binary(hub_loader("Rowan/hellaswag"), f_hellaswag),
    "mc_taco": _binary(hub_loader("CogComp/mc_taco", train="validation", test="test"), f_mc_taco),
    "multirc": _binary(hub_loader("aps/super_glue", "multirc"), f_multirc),
    "openbookqa": _binary(hub_loader("allenai/openbookqa", "main", test="test"), f_openbookqa),
    "paws": _binary(hub_loader("google-research-datasets/paws", "labeled_final", test="test"),
                    f_paws, zero_shot=YES_NO),
    "piqa": _binary(hub_loader("ybisk/piqa"), f_piqa),
    "quail": _binary(hub_loader("textmachinelab/quail"), f_quail),
    "quartz": _binary(hub_loader("allenai/quartz", test="test"), f_quartz),
    "social_i_qa": _binary(hub_loader("allenai/social_i_qa"), f_social_i_qa),
    "sst2": _binary(hub_loader("stanfordnlp/sst2"), f_sst2, zero_shot=SENTIMENT),
    "wic": _binary(hub_loader("aps/super_glue", "wic"), f_wic, zero_shot=YES_NO),
    "twitter-sentiment": _binary(hub_loader("carblacac/twitter-sentiment-analysis", test="test"),
                                 f_twitter, zero_shot=SENTIMENT),
    "anthropic_hh": _binary(hub_loader("Anthropic/hh-rlhf", test="test"), f_anthropic_hh,
                            kind="pairwise"),
    "ultrafeedback": _binary(hub_loader("HuggingFaceH4/ultrafeedback_binarized",
                                        train="train_prefs", test="test_prefs"),
                             f_ultrafeedback, kind="pairwise"),
}
register(PAPER_TASKS)
