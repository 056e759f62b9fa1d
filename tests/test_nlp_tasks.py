"""The paper's task formatters on hand-written rows in each task's Hub schema (no download)."""
import json

import numpy as np
import pytest

from w2s_jax import config as config_lib
from w2s_jax.data import dataset as data_lib, tasks
from w2s_jax.data.tokenizers import ByteTokenizer

ROWS = {
    "sciq": ({"question": "What gas do plants absorb?", "correct_answer": "carbon dioxide",
              "distractor1": "oxygen", "distractor2": "helium", "distractor3": "argon",
              "support": ""}, None),
    "boolq": ({"question": "is the sky blue", "answer": True, "passage": "The sky is blue."}, 1),
    "cosmos_qa": ({"context": "I missed the bus.", "question": "Why was I late?",
                   "answer0": "I missed the bus", "answer1": "I flew", "answer2": "I slept in",
                   "answer3": "None of the above choices .", "label": 0}, None),
    "amazon_polarity": ({"title": "Great", "content": "Loved it", "label": 1}, 1),
    "anli-r2": ({"premise": "A man sleeps.", "hypothesis": "A man is awake.", "label": 2}, 0),
    "cola": ({"sentence": "Him went home.", "label": 0, "idx": 3}, 0),
    "dream": ({"dialogue": ["M: Tea?", "W: Coffee, please."], "question": "What does she want?",
               "choice": ["Tea", "Coffee", "Water"], "answer": "Coffee"}, None),
    "ethics-commonsense": ({"input": "I kicked the dog.", "label": 1}, 0),
    "ethics-deontology": ({"scenario": "Can you cook?", "excuse": "No, I am busy.",
                           "label": 1}, 1),
    "ethics-justice": ({"scenario": "I deserve pay because I worked.", "label": 1}, 1),
    "ethics-virtue": ({"scenario": "She shared her lunch. [SEP] generous", "label": 1}, 1),
    "hellaswag": ({"ctx": "He opens the door", "endings": ["and walks in.", "and flies.",
                                                          "and melts.", "and sings."],
                   "label": "0"}, None),
    "mc_taco": ({"sentence": "He ate.", "question": "How long?", "answer": "10 minutes",
                 "label": 1, "category": "Event Duration"}, 1),
    "multirc": ({"paragraph": "Sam has a cat.", "question": "What pet?", "answer": "A cat",
                 "label": 1}, 1),
    "openbookqa": ({"question_stem": "The sun is a", "choices": {
        "text": ["star", "planet", "moon", "comet"], "label": ["A", "B", "C", "D"]},
        "answerKey": "A"}, None),
    "paws": ({"sentence1": "A is B.", "sentence2": "B is A.", "label": 1}, 1),
    "piqa": ({"goal": "Open a jar", "sol1": "Twist the lid", "sol2": "Paint the lid",
              "label": 0}, None),
    "quail": ({"context": "Ann ran.", "question": "Who ran?", "answers": ["Ann", "Bob", "Cy",
                                                                        "Dee"],
               "correct_answer_id": 0}, None),
    "quartz": ({"question": "More heat means?", "para": "Heat melts ice.", "choices": {
        "text": ["more melting", "less melting"], "label": ["A", "B"]}, "answerKey": "A"}, None),
    "social_i_qa": ({"context": "Kai helped Sam.", "question": "How does Sam feel?",
                     "answerA": "grateful", "answerB": "angry", "answerC": "bored",
                     "label": "1"}, None),
    "sst2": ({"sentence": "a charming film", "label": 1, "idx": 0}, 1),
    "wic": ({"word": "bank", "sentence1": "river bank", "sentence2": "bank loan", "label": 0}, 0),
    "twitter-sentiment": ({"text": "worst day ever", "feeling": 0}, 0),
}
CORRECT = {"sciq": "carbon dioxide", "cosmos_qa": "I missed the bus", "dream": "Coffee",
           "hellaswag": "and walks in.", "openbookqa": "star", "piqa": "Twist the lid",
           "quail": "Ann", "quartz": "more melting", "social_i_qa": "grateful"}


def cfg():
  return config_lib.defaults().task


@pytest.mark.parametrize("name", sorted(ROWS))
def test_formatter_on_a_hub_schema_row(name):
  task = tasks.get(name)
  row, expected = ROWS[name]
  labels = task.labels(cfg())
  seen = set()
  for i in range(40):  # multiple-choice tasks: both labels appear, the answer only for label 1
    text, label = task.format(dict(row, _where=f"{name} row {i}"), cfg(), labels)
    assert isinstance(text, str) and label in (0, 1)
    if expected is not None:
      assert label == expected
    if name in CORRECT:
      assert (("Answer: " + CORRECT[name]) in text) == bool(label), text
    seen.add(label)
  if name in CORRECT:
    assert seen == {0, 1}


def test_every_paper_task_is_registered_and_anthropic_hh_is_pairwise():
  assert set(ROWS) | {"anthropic_hh"} <= set(tasks.all_tasks())
  hh = tasks.get("anthropic_hh")
  assert hh.kind == "pairwise"
  (a, b), label = hh.format({"chosen": "good", "rejected": "bad", "_where": "r1"}, cfg(), ())
  assert {a, b} == {"good", "bad"} and (a == "good") == bool(label)


@pytest.mark.slow
def test_choice_tasks_are_balanced_and_deterministic():
  task = tasks.get("sciq")
  row = ROWS["sciq"][0]
  labels = [task.format(dict(row, _where=f"sciq row {i}"), cfg(), ())[1] for i in range(2000)]
  assert abs(np.mean(labels) - 0.5) < 0.04
  again = [task.format(dict(row, _where=f"sciq row {i}"), cfg(), ())[1] for i in range(2000)]
  assert labels == again


def test_a_paper_task_runs_offline_from_local_files_in_its_schema(tmp_path):
  rows = [dict(ROWS["piqa"][0], goal=f"Goal number {i}") for i in range(60)]
  path = tmp_path / "piqa.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  c = cfg()
  c.name, c.train_file = "piqa", str(path)
  splits = data_lib.load_splits(c, ByteTokenizer(), 256, 0)
  train_labels = np.concatenate([splits.a.labels, splits.b.labels])
  assert 40 <= len(train_labels) + len(splits.test) <= 60  # the paper's tasks balance 50/50
  assert abs(train_labels.mean() - 0.5) <= 1 / len(train_labels)
  bad = tmp_path / "bad.jsonl"
  bad.write_text(json.dumps({"goal": "x", "sol1": "a", "label": 0}) + "\n")
  c.train_file = str(bad)
  with pytest.raises(tasks.DataError, match=r"bad.jsonl:1: missing field sol2"):
    data_lib.load_splits(c, ByteTokenizer(), 256, 0)
  c.name = "anthropic_hh"  # pairwise: its rows need both texts
  with pytest.raises(tasks.DataError, match=r"bad.jsonl:1: missing field chosen"):
    data_lib.load_splits(c, ByteTokenizer(), 256, 0)
