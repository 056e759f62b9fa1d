"""A chess pretraining corpus: (position, move) pairs from engine self-play or a PGN file.

  self-play   randomised games: `random_plies` (a range) random opening moves, then at every ply
              the player's move is recorded as the label and played, except that with probability
              `random_move_prob` a random legal move is played instead (strength and openings vary).
              Players: "stockfish" (Debian's /usr/games/stockfish through python-chess, fixed depth,
              one thread: deterministic) or "greedy" (pure python-chess: mate-in-one, else the move
              that wins the most material net of the opponent's best capture reply).
  pgn:PATH    the moves played in a PGN file (.pgn or .pgn.zst, e.g. a Lichess monthly dump).
Positions in `exclude` (board keys of every evaluation puzzle) never enter the corpus, and each
game is a pure function of (seed, game index): the same seed gives the same corpus.
"""
import logging
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


def self_play(n_positions: int, *, player: str, depth: int, seed: int, random_plies=(2, 10),
              random_move_prob: float = 0.15, max_plies: int = 200, exclude=frozenset()):
  """(fens, moves, stats) of `n_positions` positions from randomised self-play."""
  engine = None
  if player == "stockfish":
    engine = chess.engine.SimpleEngine.popen_uci(find_stockfish())
    engine.configure({"Threads": 1, "Hash": 16})
  elif player != "greedy":
    raise ValueError(f"config.chess.corpus.player: {player!r} (stockfish | greedy)")
  fens, moves, games, excluded = [], [], 0, 0
  progress = Progress(f"corpus: {player} self-play", n_positions, "positions")
  try:
    while len(fens) < n_positions:
      progress.update(len(fens) - progress.done)
      rng = random.Random(f"{seed}:{games}")
      board, game = chess.Board(), object()  # a new `game` makes python-chess send ucinewgame
      for _ in range(rng.randint(*random_plies)):
        if board.is_game_over():
          break
        board.push(rng.choice(list(board.legal_moves)))
      while not board.is_game_over(claim_draw=False) and board.ply() < max_plies \
          and len(fens) < n_positions:
        if engine:
          move = engine.play(board, chess.engine.Limit(depth=depth), game=game).move
        else:
          move = greedy_move(board, rng)
        if board_key(board) in exclude:
          excluded += 1
        else:
          fens.append(board.fen())
          moves.append(move.uci())
        if rng.random() < random_move_prob:
          move = rng.choice(list(board.legal_moves))
        board.push(move)
      games += 1
  finally:
    if engine:
      engine.quit()
  return fens, moves, {"games": games, "excluded": excluded}


def from_pgn(path: str, n_positions: int, exclude=frozenset()):
  """(fens, moves, stats): the moves played in a PGN file's games, in file order."""
  fens, moves, games, excluded = [], [], 0, 0
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
    log.info("%s: %d games, %d of %d positions wanted (%d excluded as evaluation positions)%s "
             "(%s)", path, games, len(fens), n_positions, excluded,
             "" if len(fens) >= n_positions else ", to the end of the file", f.summary())
  if not fens:
    raise DataError(f"{path}: no games with moves in {f.summary()}")
  return fens, moves, {"games": games, "excluded": excluded}
