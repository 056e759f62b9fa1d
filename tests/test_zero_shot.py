"""Zero-shot baselines: the prompt's tokens, the answer tokens' logits read through the model's own
language-model head, pair likelihoods, and the score in every classification row."""
import json

import jax
import numpy as np
import pytest

from w2s_jax import experiment, metrics, report, sharding, train, zero_shot
from w2s_jax.data import dataset as data_lib, tasks
from w2s_jax.data.tokenizers import ByteTokenizer
from w2s_jax.models import hf as hf_lib, model_config


@pytest.fixture(scope="module")
def tiny():
  mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  tr = train.Trainer(model_config("tiny-1", 259), 2, mesh, sharding.DEFAULT_RULES)
  return tr, tr.init_params(3)


def _rows(texts):
  tok = ByteTokenizer()
  ids = [tok.encode(t) for t in texts]
  tokens = np.zeros((len(ids), 32), np.int32)
  for i, x in enumerate(ids):
    tokens[i, :len(x)] = x
  return data_lib.Dataset(tokens, np.int32([len(x) for x in ids]), np.int32([0, 1, 1][:len(ids)]))


def test_prompt_tokens_follow_each_row_without_a_second_bos():
  tok = ByteTokenizer()
  assert zero_shot.bare_tokens(tok, "ab") == [ord("a") + 3, ord("b") + 3]
  ds = zero_shot.prompted(_rows(["hi", "there"]), zero_shot.bare_tokens(tok, "?"))
  assert list(ds.lengths) == [4, 7]
  assert tok.decode(ds.tokens[1, :7]) == "there?" and ds.tokens[1, 0] == tok.bos_id
  assert zero_shot.answer_tokens(tok, (" no", " yes"))[1] == \
      "the answer words [' no', ' yes'] share their first token"
  assert zero_shot.answer_tokens(tok, ("n", "y")) == ([ord("n") + 3, ord("y") + 3], "")


@pytest.mark.slow
def test_answer_probabilities_are_the_language_model_heads(tiny):
  """Features x the head's answer columns = the model's own next-token logits after the prompt,
  restricted to the answers (here against the decoding path, prefill)."""
  tr, params = tiny
  ds = zero_shot.prompted(_rows(["good film", "bad", "fine day"]), [ord("?") + 3])
  ids = [ord("n") + 3, ord("y") + 3]
  feats = tr.predict(params, ds, 8, (33,), what="features")
  probs = metrics.softmax(zero_shot.class_logits(feats, zero_shot.head_columns(tr, params, ids)))
  logits, _ = tr.merge(params).prefill(ds.tokens, ds.lengths, 34)
  expect = jax.nn.softmax(np.asarray(logits)[:, ids], -1)
  np.testing.assert_allclose(probs, expect, atol=1e-5)
  assert not np.allclose(probs[:, 0], 0.5, atol=1e-4)  # a random head does not tie exactly


@pytest.mark.slow
def test_pair_preference_is_the_likelihood_gap(tiny):
  """P(first preferred) = sigmoid(log p(text 1) - log p(text 2)), each log-likelihood summed
  token by token from the decoding path; a pair of equal texts is a tie."""
  tr, params = tiny
  texts = _rows(["the cat sat", "a dog ran far", "the cat sat"])
  pairs = data_lib.Dataset(np.stack([texts.tokens[[0, 0]], texts.tokens[[1, 2]]], -1),
                           np.stack([texts.lengths[[0, 0]], texts.lengths[[1, 2]]], -1),
                           np.int32([1, 0]))
  probs = metrics.softmax(zero_shot.pair_logits(tr, params, pairs, 4, (32,)))
  model = tr.merge(params)

  def loglik(row):
    n, total = int(texts.lengths[row]), 0.0
    for t in range(1, n):
      logits, _ = model.prefill(texts.tokens[row:row + 1, :t], np.int32([t]), t + 1)
      total += float(jax.nn.log_softmax(logits[0])[texts.tokens[row, t]])
    return total
  gap = loglik(0) - loglik(1)
  np.testing.assert_allclose(probs[0, 1], 1 / (1 + np.exp(-gap)), atol=1e-4)
  np.testing.assert_allclose(probs[1], [0.5, 0.5], atol=1e-6)


@pytest.mark.slow
def test_rows_carry_each_pretrained_models_zero_shot_score(tmp_path, nlp_config):
  """A checkpoint-initialised strong model gets a zero_shot stage and a score in every row; the
  weak model, trained from scratch, says why it has none."""
  base = tasks.get("synthetic")
  tasks.register({"synthetic-zero-shot": base._replace(zero_shot=("?", ("n", "y")))})
  tr = train.Trainer(model_config("tiny-1", 259), 2,
                     sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]), sharding.DEFAULT_RULES)
  folder = str(tmp_path / "ckpt")
  hf_lib.export(tr.model_cfg, tr.init_params(0), folder)
  cfg = nlp_config("tiny")
  cfg.task.name = "synthetic-zero-shot"
  cfg.task.n_train, cfg.task.n_test, cfg.train.epochs = 256, 128, 1.0
  cfg.losses, cfg.seeds = ("xent",), (0, 1)
  cfg.strong.update(init=f"hf:{folder}", size="auto", mode="probe")
  rows = experiment.run(cfg, str(tmp_path / "w"))
  z = rows[0]["zero_shot"]
  assert z["tiny-1"] == {"why": "trained from scratch"}
  (score,) = [v for k, v in z.items() if k != "tiny-1"]
  assert 0 <= score["acc"] <= 1 and score["acc_ci95"][0] <= score["acc"] <= score["acc_ci95"][1]
  assert sorted(p.name.split("-")[0] for p in (tmp_path / "w" / "stages").iterdir()
                if p.name.startswith("zero_shot")) == ["zero_shot"]
  # The untrained strong model, paired with each student on the test rows and given its own
  # PGR: a row "no fine-tune" of the pooled table.
  assert all(r["no_finetune_key"][0] == "zero_shot" for r in rows)
  results = json.loads((tmp_path / "w" / "results.json").read_text())
  (base,) = results["paired"]["baselines"]
  assert base["seeds"] == 2 and base["no_finetune_acc"] == pytest.approx(score["acc"])
  student = np.mean([r["student_acc"] for r in rows])
  assert base["over_no_finetune"] == pytest.approx(student - score["acc"], abs=1e-6)
  assert "no fine-tune" in report.tables(results)
