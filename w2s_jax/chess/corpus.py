"""A chess pretraining corpus: (position, move) pairs from engine self-play or a PGN file.

  self-play   randomised games: `random_plies` (a range) random opening moves, then at every ply
              the player's move is recorded as the label and played, except that with probability
              `random_move_prob` a random legal move is played instead (strength and openings vary).
              Players: "stockfish" (Debian's /usr/games/stockfish through python-chess, fixed depth,
              one thread: deterministic) or "greedy" (pure python-chess: mate-in-one, else the move
              that wins the most material net of the opponent's best capture reply).
              With `min_gap` (stockfish), a position is recorded only when a multi-PV search finds
              its best move at least `min_gap` centipawns better than the second: tactical,
              "only move" positions like puzzles, instead of quiet ones where many moves are as
              good and the label is noise.
  pgn:PATH    the moves played in a PGN file (.pgn or .pgn.zst, e.g. a Lichess monthly dump).
Positions in `exclude` (board keys of every evaluation puzzle) never enter the corpus, and each
game is a pure function of (seed, game index): the same seed gives the same corpus.
"""
import itertools
import logging
import multiprocessing
import random
import shutil

import chess
import chess.engine
import chess.pgn

from w2s_jax.chess.puzzles import _open_text, board_key
from w2s_jax.errors import DataError
from w2s_jax.progress import Progress

log = logging.getLogger("w2s_jax")

VALUES = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9,
          chess.KING: 0}


def _gain(board: chess.Board, move: chess.Move) -> float:
  victim = board.piece_at(move.to_square)
  gain = VALUES[victim.piece_type] if victim else (1 if board.is_en_passant(move) else 0)
  return gain + (VALUES[move.promotion] - 1 if move.promotion else 0)


def greedy_move(board: chess.Board, rng: random.Random) -> chess.Move:
  """A 2-ply material player with python-chess alone (no search library)."""
  best, best_score = None, -1e9
  for move in board.legal_moves:
    score = _gain(board, move) + rng.random() * 0.1
    board.push(move)
    if board.is_checkmate():
      board.pop()
      return move
    replies = [_gain(board, r) for r in board.generate_legal_captures()]
    score -= max(replies, default=0)
    board.pop()
    if score > best_score:
      best, best_score = move, score
  return best


def find_stockfish() -> str:
  path = shutil.which("stockfish") or shutil.which("/usr/games/stockfish")
  if not path:
    raise FileNotFoundError("config.chess.corpus.player='stockfish' needs the stockfish engine "
                            "(Debian: apt-get install -y stockfish); or use player='greedy'")
  return path


def _open_engine(player: str):
  if player == "greedy":
    return None
  if player != "stockfish":
    raise ValueError(f"config.chess.corpus.player: {player!r} (stockfish | greedy)")
  engine = chess.engine.SimpleEngine.popen_uci(find_stockfish())
  engine.configure({"Threads": 1, "Hash": 16})
  return engine


def _engine_move(engine, board, depth: int, min_gap: int, game) -> tuple[chess.Move, bool]:
  """The engine's move, and whether the position is kept: with `min_gap` > 0, only when the best
  move beats the second best by at least `min_gap` centipawns (a mate counts 10,000), the
  "only move" positions that puzzles are made of."""
  if not min_gap:
    return engine.play(board, chess.engine.Limit(depth=depth), game=game).move, True
  # The game's hash carries over from ply to ply (a fresh search per position, clearing it,
  # measured 2.3x slower): a label is a function of (seed, game), like the moves played.
  lines = engine.analyse(board, chess.engine.Limit(depth=depth), multipv=2, game=game)
  scores = [line["score"].relative.score(mate_score=10_000) for line in lines]
  return lines[0]["pv"][0], len(scores) == 2 and scores[0] - scores[1] >= min_gap


def play_game(engine, index: int, *, depth: int, seed: int, random_plies, random_move_prob: float,
              max_plies: int, min_gap: int = 0, exclude=frozenset()):
  """(fens, moves, excluded) of game `index`: a pure function of (seed, index) for a given
  engine and depth (stockfish runs one thread, and `game` makes python-chess send ucinewgame)."""
  rng = random.Random(f"{seed}:{index}")
  board, game = chess.Board(), object()
  for _ in range(rng.randint(*random_plies)):
    if board.is_game_over():
      break
    board.push(rng.choice(list(board.legal_moves)))
  fens, moves, excluded = [], [], 0
  while not board.is_game_over(claim_draw=False) and board.ply() < max_plies:
    if engine:
      move, keep = _engine_move(engine, board, depth, min_gap, game)
    else:
      move, keep = greedy_move(board, rng), True
    if keep and board_key(board) in exclude:
      excluded += 1
    elif keep:
      fens.append(board.fen())
      moves.append(move.uci())
    if rng.random() < random_move_prob:
      move = rng.choice(list(board.legal_moves))
    board.push(move)
  return fens, moves, excluded


_WORKER = {}


def _worker_init(player: str, kwargs: dict) -> None:
  _WORKER.update(engine=_open_engine(player), kwargs=kwargs)


def _worker_games(indices) -> list:
  return [play_game(_WORKER["engine"], i, **_WORKER["kwargs"]) for i in indices]


def self_play(n_positions: int, *, player: str, depth: int, seed: int, random_plies=(2, 10),
              random_move_prob: float = 0.15, max_plies: int = 200, min_gap: int = 0,
              workers: int = 1, exclude=frozenset()):
  """(fens, moves, stats) of `n_positions` positions from randomised self-play: games 0, 1, ...
  in order, cut at `n_positions`, so the corpus is the same whatever the number of `workers`
  (engine processes, each playing every `workers`-th chunk of games)."""
  if min_gap and player != "stockfish":
    raise ValueError("config.chess.corpus.min_gap needs player='stockfish' (a multi-PV search)")
  kwargs = dict(depth=depth, seed=seed, random_plies=tuple(random_plies),
                random_move_prob=random_move_prob, max_plies=max_plies, min_gap=min_gap,
                exclude=exclude)
  fens, moves, games, excluded = [], [], 0, 0
  progress = Progress(f"corpus: {player} self-play" + (f", gap >= {min_gap} cp" if min_gap else ""),
                      n_positions, "positions")

  def take(results) -> bool:
    nonlocal games, excluded
    for f, m, e in results:
      games, excluded = games + 1, excluded + e
      fens.extend(f[:n_positions - len(fens)])
      moves.extend(m[:n_positions - len(moves)])
      progress.update(len(fens) - progress.done)
      if len(fens) >= n_positions:
        return True
    return False

  if workers <= 1:
    engine = _open_engine(player)
    try:
      index = 0
      while not take([play_game(engine, index, **kwargs)]):
        index += 1
    finally:
      if engine:
        engine.quit()
  else:
    chunk = 4  # games per task: large enough to hide the pipe, small enough not to overshoot
    chunks = (range(i, i + chunk) for i in itertools.count(0, chunk))
    # spawn, not fork: the parent has JAX's threads running.
    with multiprocessing.get_context("spawn").Pool(workers, _worker_init,
                                                   (player, kwargs)) as pool:
      for results in pool.imap(_worker_games, chunks):
        if take(results):
          break
      pool.terminate()
  return fens, moves, {"games": games, "excluded": excluded}


def from_pgn(path: str, n_positions: int, exclude=frozenset()):
  """(fens, moves, stats): the moves played in a PGN file's games, in file order."""
  fens, moves, games, excluded = [], [], 0, 0
  progress = Progress(f"corpus: {path}", n_positions, "positions")
  with _open_text(path) as f:
    while len(fens) < n_positions:
      game = chess.pgn.read_game(f)
      if game is None:
        break
      games += 1
      if game.errors:
        raise DataError(f"{path}: game {games} ({game.headers.get('Event', '?')}, "
                        f"{game.headers.get('Site', '?')}, ending at line {f.line}): "
                        f"{game.errors[0]}")
      board = game.board()
      for move in game.mainline_moves():
        if board_key(board) in exclude:
          excluded += 1
        else:
          fens.append(board.fen())
          moves.append(move.uci())
        board.push(move)
        if len(fens) >= n_positions:
          break
      progress.update(len(fens) - progress.done)
    log.info("%s: %d games, %d of %d positions wanted (%d excluded as evaluation positions)%s "
             "(%s)", path, games, len(fens), n_positions, excluded,
             "" if len(fens) >= n_positions else ", to the end of the file", f.summary())
  if not fens:
    raise DataError(f"{path}: no games with moves in {f.summary()}")
  return fens, moves, {"games": games, "excluded": excluded}
