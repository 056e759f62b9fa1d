"""Reward modelling: preference pairs, the Bradley-Terry head, generative fine-tuning."""
import io
import json
import tarfile

import jax
import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, graph, losses, pipeline, runtime, sharding, \
    train
from w2s_jax.data import dataset as data_lib, tasks
from w2s_jax.data.tokenizers import ByteTokenizer
from w2s_jax.models import model_config
from tests.conftest import task_cfg


HH_ROWS = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: kind answer {i}",
            "rejected": f"\n\nHuman: q{i}\n\nAssistant: rude answer {i}",
            "_where": f"hh row {i}"} for i in range(400)]


@pytest.mark.parametrize("name, rows", [
    ("anthropic_hh", HH_ROWS),
    ("ultrafeedback", [{"prompt": "p", "chosen": [{"role": "user", "content": f"q{i}"},
                                                   {"role": "assistant", "content": "good"}],
                        "rejected": [{"role": "user", "content": f"q{i}"},
                                     {"role": "assistant", "content": "bad"}],
                        "_where": f"uf row {i}"} for i in range(400)]),
])
def test_pairs_carry_no_position_signal(name, rows):
  """The chosen text is first or second at random (about half each), the label says which,
  and the order is a fixed function of the row and task.format_seed."""
  task, cfg = tasks.get(name), task_cfg(name)
  assert task.kind == "pairwise"
  out = [task.format(r, cfg, task.labels(cfg)) for r in rows]
  firsts = np.array([y for _, y in out])
  assert 0.4 < firsts.mean() < 0.6
  for (a, b), y in out:
    good = ("kind" in a or "good" in a) if y else ("kind" in b or "good" in b)
    assert good
  assert out == [task.format(r, cfg, task.labels(cfg)) for r in rows]
  other = [task.format(r, task_cfg(name, format_seed=1), task.labels(cfg))[1] for r in rows]
  assert other != list(firsts)


def test_bigbench_pairs_and_hhh_from_an_sdist(tmp_path, monkeypatch):
  path = tmp_path / "bigbench-1.0.0.tar.gz"
  with tarfile.open(path, "w:gz") as t:
    for part, n in (("social_iqa", 40), ("multiemo/all_sentence_en", 80),
                    ("hhh_alignment/harmless", 3),
                    ("hhh_alignment/helpful", 3), ("hhh_alignment/honest", 2),
                    ("hhh_alignment/other", 2)):
      blob = json.dumps({"examples": [{"input": f"{part} question {i}?", "target_scores": {
          "the right answer": 1, "wrong one": 0, "another wrong": 0}} for i in range(n)]})
      if part.startswith("multiemo"):  # 4 sentiments; the pairs use positive vs negative only
        moods = ("positive", "negative", "neutral", "ambivalent")
        blob = json.dumps({"examples": [{"input": f"Sentence {i}.", "target_scores": {
            m: int(m == moods[i % 4]) for m in moods}} for i in range(n)]})
      blob = blob.encode()
      info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{part}/task.json")
      info.size = len(blob)
      t.addfile(info, io.BytesIO(blob))
  monkeypatch.setenv("W2S_BIGBENCH_SDIST", str(path))
  monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
  cfg = task_cfg("bigbench-social_iqa-pairs")
  splits = data_lib.load_splits(cfg, ByteTokenizer(), 64, 0)
  assert splits.a.tokens.shape[1:] == (64, 2) and splits.a.lengths.shape[1:] == (2,)
  tok = ByteTokenizer()
  for ds in (splits.a, splits.test):
    for row, n, y in zip(ds.tokens, ds.lengths, ds.labels):
      first = tok.decode(row[:n[0], 0])
      assert first.endswith("the right answer") == bool(y)
  # Sentiment pairs: only positive/negative rows, the right sentiment vs the opposite one.
  task = tasks.get("bigbench-multiemo-sentence-pairs")
  rows = task.load(cfg)["train"]
  assert len(rows) == 40  # neutral and ambivalent rows are left out
  for r in rows:
    (a, b), y = task.format(r, cfg, task.labels(cfg))
    right = "positive" if int(r["input"].split()[1][:-1]) % 4 == 0 else "negative"
    wrong = {"positive": "negative", "negative": "positive"}[right]
    assert (a, b) == ((f"{r['input']}\nAnswer: {right}", f"{r['input']}\nAnswer: {wrong}") if y
                      else (f"{r['input']}\nAnswer: {wrong}", f"{r['input']}\nAnswer: {right}"))
  hhh = data_lib.load_eval("bigbench-hhh_alignment", cfg, tok, 64)
  assert len(hhh) == 10 and hhh.tokens.shape[2] == 2


@pytest.mark.slow
def test_bradley_terry_head_and_loss_match_numpy():
  """One scalar per text, read at its last real token; softmax over [r_B, r_A] is the
  Bradley-Terry P(first preferred); xent with soft targets is the soft BT loss."""
  mc = model_config("tiny-2", 50)
  mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  tr = train.Trainer(mc, 2, mesh, sharding.DEFAULT_RULES, pairwise=True)
  params = tr.init_params(0)
  params["cls_head"] = jax.random.normal(jax.random.key(1), params["cls_head"].shape)
  rng = np.random.default_rng(0)
  tokens = rng.integers(3, 50, (4, 12, 2)).astype(np.int32)
  lengths = np.array([[12, 5], [3, 9], [7, 7], [1, 12]], np.int32)
  y = np.array([0.9, 0.2, 0.5, 1.0], np.float32)
  logits = np.asarray(tr.logits(params, tokens, lengths))
  model = tr.merge(params)
  reward = [np.asarray(model(tokens[..., j], lengths[:, j]))[:, 0] for j in (0, 1)]
  np.testing.assert_allclose(logits, np.stack([reward[1], reward[0]], -1), rtol=1e-5, atol=1e-6)
  margin = reward[0] - reward[1]
  log_sig = lambda z: -np.log1p(np.exp(-z))  # noqa: E731
  ref = -np.mean(y * log_sig(margin) + (1 - y) * log_sig(-margin))
  got = losses.get("xent")(logits, np.stack([1 - y, y], -1))
  np.testing.assert_allclose(got, ref, rtol=1e-5)


@pytest.fixture
def rm_config():
  from tests.conftest import _config_module  # noqa: PLC0415
  cfg = _config_module("reward_model")("tiny")
  cfg.task.n_train, cfg.task.n_test = 256, 96
  cfg.train.update(batch_size=32, eval_batch_size=96)
  return cfg


@pytest.mark.slow
def test_generative_stage_never_reads_the_labels(rm_config, tmp_path):
  rt = runtime.Runtime(rm_config, str(tmp_path))
  builder = pipeline.Builder(rm_config, rt, graph.Graph())
  stage = builder.gft(rm_config.strong, 0)
  rng = np.random.default_rng(0)
  data = builder.data
  a, b = data.sets(0)["a_strong"], data.sets(0)["b_strong"]
  relabelled = pipeline.Builder(rm_config, runtime.Runtime(rm_config, str(tmp_path / "b")),
                                graph.Graph())
  pool = relabelled.data.pool
  relabelled.data.pool = data_lib.Dataset(pool.tokens, pool.lengths, rng.permutation(pool.labels))
  relabelled.data._seeds = {}  # cut again from the relabelled pool
  assert (relabelled.data.sets(0)["b_strong"].labels != b.labels).any()
  assert relabelled.gft(rm_config.strong, 0).key == stage.key
  graph.execute(builder.graph, rt.store)
  assert rt.store.metrics("gft", stage.key)["texts"] == 2 * (len(a) + len(b))


@pytest.mark.slow
def test_tiny_reward_model_end_to_end(rm_config, tmp_path):
  rows = experiment.run(rm_config, str(tmp_path))
  assert {(r["loss"], r["gft"]) for r in rows} == {("xent", False), ("logconf", False),
                                                   ("xent", True), ("logconf", True)}
  by = {(r["loss"], r["gft"]): r for r in rows}
  # The weak model is shared; the strong stages differ with and without the generative stage.
  assert by[("xent", False)]["stage_keys"]["weak"] == by[("xent", True)]["stage_keys"]["weak"]
  assert by[("xent", False)]["stage_keys"]["ceiling"] != by[("xent", True)]["stage_keys"]["ceiling"]
  assert all(0 <= r["student_acc"] <= 1 and r["n_test"] == 96 for r in rows)


def test_probing_a_reward_model_is_refused(rm_config):
  rm_config.strong.mode = "probe"
  rm_config.generative_finetune.enabled = False
  with pytest.raises(config_lib.ConfigError, match="strong.mode"):
    config_lib.validate(rm_config, 8)
