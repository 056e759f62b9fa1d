"""Task loading, tokenization, splits and batching."""
import json

import numpy as np
import pytest

from w2s_jax.data import dataset as data_lib, tasks
from w2s_jax.data.tokenizers import ByteTokenizer, get_tokenizer
from tests.conftest import task_cfg


def write_jsonl(path, rows):
  path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
  return str(path)


def test_malformed_jsonl_rows_name_file_and_line(tmp_path):
  good = {"text": "fine", "label": 1}
  cases = [("{not json", "not valid JSON"), ('["a list"]', "expected a JSON object"),
           (json.dumps({"txt": "x", "label": 0}), "needs fields 'text' and 'label'"),
           (json.dumps({"text": "x", "label": 2}), "label 2 out of range"),
           (json.dumps({"text": 5, "label": 0}), "must be a string"),
           (json.dumps({"text": "x", "label": "maybe"}), "unknown label 'maybe'")]
  for bad, message in cases:
    path = write_jsonl(tmp_path / "train.jsonl", [good, good, bad, good])
    with pytest.raises(tasks.DataError, match=rf"train.jsonl:3: .*{message}"):
      data_lib.load_splits(task_cfg(name="jsonl", train_file=path), ByteTokenizer(), 64, 0)


def test_jsonl_labels_by_name_and_held_out_test(tmp_path):
  rows = [{"text": f"example {i}", "label": ["no", "yes"][i % 2]} for i in range(40)]
  path = write_jsonl(tmp_path / "t.jsonl", rows)
  s = data_lib.load_splits(task_cfg(name="jsonl", train_file=path, labels=("no", "yes"),
                                    test_frac=0.25), ByteTokenizer(), 64, 0)
  assert (len(s.a), len(s.b), len(s.test)) == (15, 15, 10)
  assert s.labels == ("no", "yes")
  with pytest.raises(FileNotFoundError, match="missing.jsonl"):
    data_lib.load_splits(task_cfg(name="jsonl", train_file=str(tmp_path / "missing.jsonl")),
                         ByteTokenizer(), 64, 0)


def test_n_test_samples_a_sorted_test_file(tmp_path):
  rows = [{"text": f"example {i}", "label": int(i >= 50)} for i in range(100)]
  train = write_jsonl(tmp_path / "train.jsonl", rows)
  # sorted by label, as many test files are (other texts: a test text in train is dropped there)
  test = write_jsonl(tmp_path / "test.jsonl", [{**r, "text": "test " + r["text"]} for r in rows])
  load = lambda seed: data_lib.load_splits(task_cfg(  # noqa: E731
      name="jsonl", train_file=train, test_file=test, n_test=20), ByteTokenizer(), 64, seed)
  s = load(0)
  assert len(s.test) == 20 and 0.2 < s.test.labels.mean() < 0.8  # not the first 20 rows
  np.testing.assert_array_equal(s.test.tokens, load(0).test.tokens)
  assert not np.array_equal(s.test.tokens, load(1).test.tokens)


def test_over_long_examples_are_dropped_and_counted(tmp_path):
  rows = [{"text": "x" * n, "label": n % 2} for n in (3, 4, 50, 5, 60, 6, 7, 8)]
  path = write_jsonl(tmp_path / "t.jsonl", rows)
  test = write_jsonl(tmp_path / "test.jsonl", [{**r, "text": "y" * len(r["text"])}
                                                for r in rows[:3]])
  s = data_lib.load_splits(task_cfg(name="jsonl", train_file=path, test_file=test),
                           ByteTokenizer(), 16, 0)
  assert s.dropped == {"train": 2, "test": 1, "duplicates": 0}
  assert len(s.a) + len(s.b) == 6 and s.a.lengths.max() <= 16


def test_hf_datasets_loader_reads_local_files_offline(tmp_path):
  rows = [{"sentence": f"s{i}", "y": i % 2} for i in range(20)]
  train = write_jsonl(tmp_path / "train.jsonl", rows)
  test = write_jsonl(tmp_path / "test.jsonl", [{**r, "sentence": f"t{i}"}
                                                for i, r in enumerate(rows[:6])])
  s = data_lib.load_splits(task_cfg(name="hf", hf_path="json", train_file=train, test_file=test,
                                    text_field="sentence", label_field="y"),
                           ByteTokenizer(), 32, 0)
  assert len(s.a) == len(s.b) == 10 and len(s.test) == 6
  bad = write_jsonl(tmp_path / "bad.jsonl", rows[:3] + [{"sentence": "s", "y": 7}])
  with pytest.raises(tasks.DataError, match=r"json\[train\] row 3: label 7 out of range"):
    data_lib.load_splits(task_cfg(name="hf", hf_path="json", train_file=bad, test_file=test,
                                  text_field="sentence", label_field="y"), ByteTokenizer(), 32, 0)


def test_synthetic_task_is_balanced_deterministic_and_disjoint_halves():
  cfg = task_cfg(n_train=400, n_test=100)
  s1 = data_lib.load_splits(cfg, ByteTokenizer(), 32, 0)
  s2 = data_lib.load_splits(cfg, ByteTokenizer(), 32, 0)
  assert s1.a.key() == s2.a.key() and s1.test.key() == s2.test.key()
  assert s1.a.key() != s1.b.key()
  assert abs(s1.test.labels.mean() - 0.5) < 0.01
  assert all(ByteTokenizer().decode(t[:n]).endswith("=") for t, n in zip(s1.a.tokens, s1.a.lengths))
  other = data_lib.load_splits(cfg, ByteTokenizer(), 32, data_seed=1)
  assert other.a.key() != s1.a.key()


def test_synthetic_labels_follow_the_rule():
  rng = np.random.default_rng(0)
  for i in range(200):
    text = tasks.synthetic_example(rng, i % 2, 0.3, 9)
    score, neg = 0, False
    for ch in text[:-1]:
      if ch == "!":
        neg = True
      elif ch in tasks.POSITIVE + tasks.NEGATIVE:
        score += (1 if ch in tasks.POSITIVE else -1) * (-1 if neg else 1)
        neg = False
    assert (score > 0) == bool(i % 2)


def test_batches_are_bucketed_and_a_pure_function_of_seed_and_step():
  s = data_lib.load_splits(task_cfg(n_train=300, n_test=50), ByteTokenizer(), 32, 0)
  targets = data_lib.one_hot(s.a.labels, 2)
  b1 = data_lib.train_batch(s.a, targets, 7, batch_size=32, accum=4, seed=3, buckets=(16, 32))
  b2 = data_lib.train_batch(s.a, targets, 7, batch_size=32, accum=4, seed=3, buckets=(16, 32))
  assert b1["tokens"].shape[:2] == (4, 8) and b1["tokens"].shape[2] in (16, 32)
  for k in b1:
    np.testing.assert_array_equal(b1[k], b2[k])
  # Every example is seen once per epoch.
  per_epoch = data_lib.steps_per_epoch(len(s.a), 32)
  seen = np.concatenate([data_lib.train_batch(s.a, np.arange(len(s.a))[:, None], st, batch_size=32,
                                              accum=1, seed=3, buckets=(16, 32))["targets"].ravel()
                         for st in range(per_epoch)])
  assert len(set(seen.tolist())) == per_epoch * 32
  # Evaluation covers every row once, padded to full batches.
  idx = np.concatenate([i for i, _ in data_lib.eval_batches(s.test, 16, (16, 32))])
  assert sorted(idx.tolist()) == list(range(len(s.test)))


def test_tokenizer_specs(tmp_path):
  assert get_tokenizer("byte").vocab_size == 259
  from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: PLC0415
  tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.save(str(tmp_path / "tokenizer.json"))
  hf = get_tokenizer(f"file:{tmp_path}")
  assert hf.encode("hello world").tolist() == [1, 2] and hf.vocab_size == 3
  with pytest.raises(FileNotFoundError, match="config.tokenizer"):
    get_tokenizer(f"file:{tmp_path}/nothing")
  with pytest.raises(ValueError, match="unknown spec"):
    get_tokenizer("sentencepiece")
