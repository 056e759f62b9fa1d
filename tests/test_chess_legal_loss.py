"""chess.legal_loss: a softmax over the position's legal moves in pretraining and fine-tuning."""
import json
import time

import chess
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, loop, losses, sharding, train
from w2s_jax.chess import decode, encoding, puzzles
from w2s_jax.models import model_config

V = encoding.VOCAB_SIZE
# FENs with known legal-move counts (perft 1): the start, after 1.e4 (black mirrored), Kiwipete,
# a promotion (4 pieces on a8) and an en-passant capture.
FENS = {chess.STARTING_FEN: 20,
        "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1": 20,
        "r3k2r/p1ppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq - 0 1": 48,
        "8/P7/8/8/8/8/8/k6K w - - 0 1": 7,
        "4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 2": 7}


def unpack(bits):
  return np.unpackbits(bits, axis=-1, count=V, bitorder="little").astype(bool)


def test_legal_bits_are_the_positions_legal_moves():
  boards = [chess.Board(f) for f in FENS]
  legal = unpack(encoding.legal_bits(boards))
  assert legal.shape == (len(boards), V) and list(legal.sum(-1)) == list(FENS.values())
  for row, board in zip(legal, boards):
    assert {encoding.token_move(board, int(t)) for t in np.flatnonzero(row)} == \
        set(board.legal_moves)
  np.testing.assert_array_equal(np.asarray(train.legal_classes(encoding.legal_bits(boards), V)),
                                legal)


def reference(logits, target, legal):
  """NumPy: cross-entropy of a softmax over the legal classes, targets renormalized on them."""
  z = logits.astype(np.float64)
  top = np.where(legal, z, -np.inf).max(-1, keepdims=True)
  logp = z - top - np.log(np.where(legal, np.exp(np.minimum(z - top, 0)), 0.0).sum(-1,
                                                                                 keepdims=True))
  t = np.where(legal, target, 0.0)
  t = t / np.maximum(t.sum(-1, keepdims=True), 1e-12)
  return -(t * np.where(legal, logp, 0.0)).sum(-1), np.where(legal, np.exp(logp), 0.0)


def test_legal_loss_matches_numpy_and_gives_illegal_moves_nothing():
  boards = [chess.Board(f) for f in FENS]
  legal = unpack(encoding.legal_bits(boards))
  logits = np.random.default_rng(0).normal(0, 3, (len(boards), V)).astype(np.float32)
  logits[:, encoding.PAD] = 20.0  # an illegal favourite: it must not matter
  hard = np.eye(V, dtype=np.float32)[[encoding.move_token(b, next(iter(b.legal_moves)))
                                      for b in boards]]
  hard[-1] = np.eye(V, dtype=np.float32)[encoding.PAD]  # an illegal label: no loss at all
  soft = np.random.default_rng(1).dirichlet(np.ones(V), len(boards)).astype(np.float32)
  mask = jnp.asarray(legal)

  def loss(z, y):
    return losses.cross_entropy(train.restrict(z, mask), train.restrict_targets(y, mask))

  for y in (hard, soft):
    want, probs = reference(logits, y, legal)
    np.testing.assert_allclose(loss(jnp.asarray(logits), jnp.asarray(y)), want, rtol=1e-5,
                               atol=1e-5)
    grad = np.asarray(jax.grad(lambda z: loss(z, jnp.asarray(y)).sum())(jnp.asarray(logits)))
    assert not grad[~legal].any() and np.abs(grad[legal]).sum() > 0
    p = np.asarray(jax.nn.softmax(train.restrict(jnp.asarray(logits), mask)))
    np.testing.assert_allclose(p, probs, atol=1e-6)
    assert not p[~legal].any()
  assert reference(logits, hard, legal)[0][-1] == 0
  assert not np.asarray(jax.grad(lambda z: loss(z, jnp.asarray(hard))[-1])(
      jnp.asarray(logits))).any()


def positions(n):
  out, board, rng = [], chess.Board(), np.random.default_rng(0)
  while len(out) < n:
    moves = list(board.legal_moves)
    if not moves:
      board = chess.Board()
      continue
    out.append(puzzles.Position(str(len(out)), board.fen(), moves[0].uci(), 0, board.fen(), ()))
    board.push(moves[rng.integers(len(moves))])
  return out


@pytest.mark.slow
def test_the_train_step_takes_the_legal_loss_and_compiles_once():
  """The jitted step's first loss is the NumPy legal-move loss of the initial model's
  probabilities, with and without gradient accumulation (logconf: the micro-batched path that
  predicts the whole batch first; its confidence weight starts at 0, so its first loss is plain
  cross-entropy); other rows and legal sets of the same shape reuse the program."""
  codec = decode.codec("native", "", 10, 1, (10,))
  pos = positions(32)
  ds, targets = codec.training(codec.dataset(pos), pos)
  bits = codec.legal(pos)
  # One device: the numbers are the mesh's business elsewhere (the tiny ladder runs on 8).
  tr = train.Trainer(model_config("tiny-1", V), 0, sharding.make_mesh(1, 1, 1, jax.devices()[:1]),
                     sharding.DEFAULT_RULES)
  tcfg = train.with_overrides(config_lib.defaults().train, batch_size=32, buckets=(10,),
                              log_every=1)
  start = tr.init_params(0)

  def fit(t, legal, loss_name="xent", micro=0):  # fit consumes its parameters: a copy each
    return loop.fit(tr, jax.tree.map(jnp.copy, start), ds, t, objective="hard",
                    loss_name=loss_name, loss_hp={}, lr=1e-3, seed=0, steps=1, legal=legal,
                    tcfg=train.with_overrides(tcfg, micro_batch_size=micro)).history[0]["loss"]

  probs = tr.predict(start, ds, 32, (10,))
  want = reference(np.log(probs), np.eye(V)[targets], unpack(bits))[0].mean()
  got = fit(targets, bits)
  np.testing.assert_allclose(got, want, rtol=1e-4)
  np.testing.assert_allclose(fit(targets, bits, "logconf", micro=8), want, rtol=1e-4)
  assert got < -np.log(probs[np.arange(32), targets]).mean() - 1  # ~log(25) moves, not log(1,990)
  traced = tr.traces["train"]
  other = positions(64)[32:]
  fit(codec.training(codec.dataset(other), other)[1], codec.legal(other))
  assert tr.traces["train"] == traced
  with pytest.raises(ValueError, match="legal bit sets"):
    fit(targets, bits[:, :10])


@pytest.mark.slow
def test_tiny_ladder_with_the_legal_loss(chess_config, tmp_path):
  """The tiny variant with chess.legal_loss runs end to end; its pretrain and train stages are
  not those of a run without it (the corpus is shared)."""
  cfg = chess_config("tiny")
  cfg.chess.update(legal_loss=True, label_legal_mask=True, legal_mask=True)
  config_lib.validate(cfg, jax.device_count())
  t0 = time.time()
  rows = experiment.run(cfg, str(tmp_path))
  # ~26 s with JAX's compilation cache warm; ~78 s cold on one shared core (75 s without the
  # option): a bound that holds either way.
  assert time.time() - t0 < 120
  assert rows and all(r["legal_loss"] for r in rows)
  spec = json.loads((tmp_path / "stages" / f"train-{rows[0]['stage_keys']['student']}" /
                     "spec.json").read_text())
  assert spec["legal_loss"] is True
  off = chess_config("tiny")
  off.chess.update(legal_loss=False, label_legal_mask=True, legal_mask=True)

  def keys(c):
    return {(s.kind, s.label): s.key for s in experiment.plan(c, str(tmp_path / "plan"))[1]}
  on, plain = keys(cfg), keys(off)
  assert on.keys() == plain.keys()
  assert all((on[k] == plain[k]) == (k[0] == "corpus") for k in on)
  for bad, key in ((dict(label_legal_mask=False), "label_legal_mask"),
                   (dict(encoding="fen", legal_mask=False, label_legal_mask=False), "legal_loss")):
    c = chess_config("tiny")
    c.chess.update(**{"legal_loss": True, "label_legal_mask": True, **bad})
    with pytest.raises(config_lib.ConfigError, match=key):
      config_lib.validate(c, jax.device_count())
