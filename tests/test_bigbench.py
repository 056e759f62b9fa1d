"""BIG-bench tasks from an sdist (a small one with the real layout, built here)."""
import io
import json
import tarfile

import pytest

from w2s_jax import assets, config as config_lib
from w2s_jax.data import bigbench, dataset as data_lib, tasks
from w2s_jax.data.tokenizers import ByteTokenizer


def member(t, path, examples):
  blob = json.dumps({"name": path, "examples": examples}).encode()
  info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{path}/task.json")
  info.size = len(blob)
  t.addfile(info, io.BytesIO(blob))


@pytest.fixture
def fake_sdist(tmp_path, monkeypatch):
  path = tmp_path / "bigbench-1.0.0.tar.gz"
  with tarfile.open(path, "w:gz") as t:
    member(t, "strategyqa", [{"input": f"Is {i} even?", "target_scores": {
        "Yes": int(i % 2 == 0), "No": int(i % 2)}} for i in range(40)])
    member(t, "multiemo/all_text_en", [{"input": f"review {i}", "target_scores": {
        "positive": int(i % 3 == 0), "negative": int(i % 3 == 1), "neutral": int(i % 3 == 2),
        "ambivalent": 0}} for i in range(60)])
    member(t, "social_iqa", [{"input": f"Why {i}?", "target_scores": {
        "because": 1, "never": 0, "blue": 0}} for i in range(40)])
    member(t, "not_used", [])
  monkeypatch.setenv("W2S_BIGBENCH_SDIST", str(path))
  monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
  return path


def load(name, **kw):
  c = config_lib.defaults().task
  c.name = name
  for k, v in kw.items():
    c[k] = v
  return data_lib.load_splits(c, ByteTokenizer(), 256, 0)


def test_tasks_are_extracted_once_and_formatted(fake_sdist, tmp_path):
  s = load("bigbench-strategyqa")
  assert len(s.a) + len(s.b) + len(s.test) == 40  # no test split: 20% held out
  tasks_dir = tmp_path / "cache" / "assets" / "bigbench" / "bigbench-1.0.0" / "bigbench"
  assert sorted(p.name for p in (tasks_dir / "benchmark_tasks").iterdir()) == [  # read ones only
      "multiemo", "social_iqa", "strategyqa"]
  task = tasks.get("bigbench-strategyqa")
  assert task.format({"input": "Is 4 even? ", "target_scores": {"Yes": 1, "No": 0}},
                     None, ()) == ("Is 4 even?", 1)
  emo = load("bigbench-multiemo")  # neutral rows dropped: positive vs negative
  assert len(emo.a) + len(emo.b) + len(emo.test) == 40
  qa = load("bigbench-social_iqa")
  texts = [ByteTokenizer().decode(t[:n]) for t, n in zip(qa.a.tokens, qa.a.lengths)]
  for text, y in zip(texts, qa.a.labels):
    assert text.endswith("Answer: because") == bool(y)


def test_malformed_example_names_it(fake_sdist, tmp_path):
  task = tasks.get("bigbench-strategyqa")
  with pytest.raises(tasks.DataError, match="bigbench/strategyqa example 3: expected"):
    task.format({"input": "x", "_where": "bigbench/strategyqa example 3"}, None, ())


def test_without_the_sdist_one_line_names_the_asset_and_the_knobs(tmp_path, monkeypatch):
  monkeypatch.delenv("W2S_BIGBENCH_SDIST", raising=False)
  monkeypatch.delenv("W2S_ASSET_DIR", raising=False)
  monkeypatch.setenv("W2S_CACHE", str(tmp_path))
  with pytest.raises(assets.AssetError) as e:
    load("bigbench-strategyqa")
  msg = str(e.value)
  assert "\n" not in msg and "asset 'bigbench'" in msg and "no registry serves it" in msg
  assert "W2S_BIGBENCH_SDIST=PATH" in msg and "--config.task.name" in msg


def test_pinned_hash_and_member_list():
  assert len(assets.ASSETS["bigbench"].sha256) == 64
  assert {"strategyqa", "social_iqa", "vitaminc_fact_verification"} <= set(bigbench.MEMBERS)
