"""Zero-shot baselines: what a pretrained model scores on a task with no training at all, so that a
null weak-to-strong result can be told apart from a broken one.

  classification  the task's prompt (tasks.Task.zero_shot) appended to every test row; the class
                  is the answer word whose first token the model's language-model head scores
                  highest there. A model cut to its first k layers reads layer k's final-normed
                  state through the same head (the logit lens): one all-layers forward pass over
                  the prompted rows serves a whole depth ladder.
  pairwise        the text of the pair the model finds more likely (sum of its next-token
                  log-probabilities); for two texts that differ only in their answer, the answer
                  the model prefers.
"""
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from w2s_jax.data import dataset as data_lib

_LOGLIK = weakref.WeakKeyDictionary()  # trainer -> its jitted text log-likelihood


def bare_tokens(tokenizer, text: str) -> list[int]:
  """`text`'s ids without what the tokenizer puts around any text (a BOS, an EOS)."""
  ids, empty = [int(i) for i in tokenizer.encode(text)], [int(i) for i in tokenizer.encode("")]
  k = 0
  while k < min(len(empty), len(ids)) and ids[k] == empty[k]:
    k += 1
  tail = empty[k:]
  return ids[k:len(ids) - len(tail)] if tail and ids[len(ids) - len(tail):] == tail else ids[k:]


def answer_tokens(tokenizer, words) -> tuple[list[int], str]:
  """The first token of each answer word, and "" or why they cannot tell the classes apart."""
  ids = [(bare_tokens(tokenizer, w) or [-1])[0] for w in words]
  if len(set(ids)) < len(ids):
    return ids, f"the answer words {list(words)} share their first token"
  return ids, ""


def prompted(ds: data_lib.Dataset, suffix: list[int]) -> data_lib.Dataset:
  """Every row of `ds` with the prompt's tokens appended after its last real token."""
  n, k = len(ds), len(suffix)
  tokens = np.zeros((n, ds.tokens.shape[1] + k), ds.tokens.dtype)
  for i, m in enumerate(ds.lengths):
    tokens[i, :m] = ds.tokens[i, :m]
    tokens[i, m:m + k] = suffix
  return data_lib.Dataset(tokens, (ds.lengths + k).astype(np.int32), ds.labels)


def head_columns(trainer, params, ids) -> np.ndarray:
  """The language-model head's columns of token `ids`, fp32 [d, len(ids)], on the host."""
  name = "embed" if trainer.model_cfg.tied_embeddings else "lm_head"
  idx = jnp.asarray(ids)
  pick = (lambda w: w[idx].T) if name == "embed" else (lambda w: w[:, idx])
  cols = jax.jit(pick, out_shardings=trainer.replicated)(params[name])
  return np.asarray(jax.device_get(cols), np.float32)


def class_logits(features: np.ndarray, columns: np.ndarray, softcap: float = 0.0) -> np.ndarray:
  """The answer tokens' logits [N, C] from final-normed features [N, d] (their softmax: the
  class probabilities)."""
  logits = features.astype(np.float32) @ columns
  return softcap * np.tanh(logits / softcap) if softcap else logits


def _loglik_fn(trainer):
  if trainer not in _LOGLIK:
    def loglik(params, tokens, lengths):
      trainer.traces["predict"] += 1
      model = trainer.merge(params)
      logp = jax.nn.log_softmax(model.lm_logits(model.hidden(tokens, trainer.act_sharding())))
      nxt = jnp.take_along_axis(logp[:, :-1], tokens[:, 1:, None], -1)[..., 0]
      real = jnp.arange(tokens.shape[1] - 1)[None] < (lengths - 1)[:, None]
      return jnp.sum(jnp.where(real, nxt, 0.0), -1, keepdims=True)
    _LOGLIK[trainer] = jax.jit(loglik, in_shardings=(
        trainer.param_shardings, trainer._batch_sharding(1), trainer._batch_sharding(0)),
        out_shardings=trainer._batch_sharding(1))
  return _LOGLIK[trainer]


def pair_logits(trainer, params, ds: data_lib.Dataset, batch_size: int, buckets) -> np.ndarray:
  """Logits [N, 2] of pairs [N, L, 2]: (second text's, first text's) log-likelihood, so that
  their softmax's column 1, P(first text preferred), is a logistic of the gap."""
  n = len(ds)
  texts = data_lib.Dataset(np.concatenate([ds.tokens[..., 0], ds.tokens[..., 1]]),
                           np.concatenate([ds.lengths[:, 0], ds.lengths[:, 1]]),
                           np.zeros(2 * n, np.int32))
  ll = trainer._over_batches(_loglik_fn(trainer), params, texts, batch_size, buckets, 1,
                             np.float32)[:, 0]
  return np.stack([ll[n:], ll[:n]], -1)
