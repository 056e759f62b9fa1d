"""Chess positions as model inputs: a chess-native vocabulary, and text for pretrained LMs.

Native ("native"): the board seen from the side to move (black's positions are mirrored, so the
model always plays "up the board"): 8 rank tokens, each the sum of the embeddings of its pieces
(file x own/opponent x type), or 64 square tokens (`layout="squares"`), then a castling/en-passant
token and ANSWER; the answer is ONE token over the 1,880 UCI moves a side can ever make (1,792
queen and knight moves + 88 promotions).
"First move exact match" is then an argmax, and legal-move masking is a mask over move tokens.
(Character-level FEN learns nothing in CPU minutes: ../shared/CHESS_NOTES.md.)

Text ("fen", "pgn"): the position through the model's own tokenizer, the answer as text, for
pretrained language models (the paper's format): "fen" = the FEN and a UCI answer; "pgn" = the
game's moves in SAN (from a [FEN] header when the game's start is unknown) and a SAN answer.
"""
import functools

import chess
import numpy as np

PAD = 0  # also "nothing here" inside a multi-id position
PIECE_BASE = 1  # 8 files x (own/opponent x 6 piece types): a piece on a file of the rank
CASTLING_BASE = PIECE_BASE + 8 * 12  # own K, own Q, opponent K, opponent Q
EP_BASE = CASTLING_BASE + 4  # en-passant file a..h
ANSWER = EP_BASE + 8  # "the move follows": the model predicts the move at this position
MOVE_BASE = ANSWER + 1


def _all_moves() -> list[str]:
  moves = []
  for a in chess.SQUARES:
    for b in chess.SQUARES:
      df = chess.square_file(b) - chess.square_file(a)
      dr = chess.square_rank(b) - chess.square_rank(a)
      if a != b and (df == 0 or dr == 0 or abs(df) == abs(dr) or {abs(df), abs(dr)} == {1, 2}):
        moves.append(chess.Move(a, b).uci())
  for f in range(8):  # white pawns promote from rank 7: straight or capturing
    for g in (f - 1, f, f + 1):
      if 0 <= g < 8:
        moves += [chess.Move(chess.square(f, 6), chess.square(g, 7), p).uci()
                  for p in (chess.QUEEN, chess.ROOK, chess.BISHOP, chess.KNIGHT)]
  return moves


MOVES = tuple(_all_moves())
MOVE_INDEX = {m: i for i, m in enumerate(MOVES)}
VOCAB_SIZE = MOVE_BASE + len(MOVES)  # the rank layout's vocabulary
SQUARE_BASE = VOCAB_SIZE  # the square layout adds one id per square after the moves
LAYOUTS = {  # board layout -> (positions, vocabulary size, ids per position)
    # ranks 1..8 (the mover's first), castling/en passant, ANSWER; a rank holds at most 8 pieces
    "ranks": (8 + 1 + 1, VOCAB_SIZE, 8),
    # squares a1..h8 (square id, piece id), castling/en passant (at most 5 ids), ANSWER
    "squares": (64 + 1 + 1, VOCAB_SIZE + 64, 5),
}
MAX_LEN = LAYOUTS["ranks"][0]


@functools.lru_cache(maxsize=None)
def move_geometry() -> tuple:
  """What the square move head (Transformer(move_geometry=...)) scores: the 1,880 move tokens'
  from and to squares in the mover's view, their promotions (0 = none, else python-chess's
  piece type - 1: knight 1 .. queen 4), as tuples, and the first move token's id."""
  ms = [chess.Move.from_uci(m) for m in MOVES]
  return (tuple(m.from_square for m in ms), tuple(m.to_square for m in ms),
          tuple((m.promotion or 1) - 1 for m in ms), MOVE_BASE)


def _flip(move: chess.Move) -> chess.Move:
  return chess.Move(chess.square_mirror(move.from_square), chess.square_mirror(move.to_square),
                    move.promotion)


def board_tokens(board: chess.Board, layout: str = "ranks") -> np.ndarray:
  """The native prompt of `board` from the side to move's view: [positions, ids per position]
  ids, 0-padded; a position's embedding is the sum of its ids' embeddings.
    ranks    a rank token is exactly a linear embedding of its 8 squares' piece states (an
             empty square adds nothing): 10 positions, cheap, but every square of a rank is
             mixed into one vector before any attention.
    squares  a token per square (the square's id + its piece's id): 66 positions, ~6x the
             compute, and each square has its own vector, so attention can relate a piece to
             the squares it attacks (what tactics are made of)."""
  b = board if board.turn == chess.WHITE else board.mirror()
  n, _, ids = LAYOUTS[layout]
  out = np.zeros((n, ids), np.int32)
  fill = np.zeros(n, np.int32)
  if layout == "squares":
    out[:64, 0] = SQUARE_BASE + np.arange(64)
    fill[:64] = 1
  for sq, p in b.piece_map().items():
    rank, file = chess.square_rank(sq), chess.square_file(sq)
    row = sq if layout == "squares" else rank
    out[row, fill[row]] = PIECE_BASE + file * 12 + (p.color != chess.WHITE) * 6 + p.piece_type - 1
    fill[row] += 1
  rights = (b.has_kingside_castling_rights(chess.WHITE), b.has_queenside_castling_rights(chess.WHITE),
            b.has_kingside_castling_rights(chess.BLACK), b.has_queenside_castling_rights(chess.BLACK))
  meta = [CASTLING_BASE + i for i, r in enumerate(rights) if r]
  if b.has_legal_en_passant():
    meta.append(EP_BASE + chess.square_file(b.ep_square))
  out[n - 2, :len(meta)] = meta
  out[n - 1, 0] = ANSWER
  return out


def move_token(board: chess.Board, move: chess.Move) -> int:
  m = move if board.turn == chess.WHITE else _flip(move)
  return MOVE_BASE + MOVE_INDEX[m.uci()]


def token_move(board: chess.Board, token: int):
  """The move a token means in `board` (None for a token that is not a move)."""
  if not MOVE_BASE <= token < MOVE_BASE + len(MOVES):
    return None
  m = chess.Move.from_uci(MOVES[token - MOVE_BASE])
  return m if board.turn == chess.WHITE else _flip(m)


def legal_tokens(board: chess.Board) -> list[int]:
  return [move_token(board, m) for m in board.legal_moves]


def legal_bits(boards, vocab_size: int = VOCAB_SIZE) -> np.ndarray:
  """[N, ceil(vocab_size / 8)] uint8: each board's legal move tokens as a little-endian bit set
  (np.packbits), what a legal-move loss reads (249 bytes a position)."""
  out = np.zeros((len(boards), (vocab_size + 7) // 8), np.uint8)
  for i, board in enumerate(boards):
    t = np.array(legal_tokens(board), np.int64)
    np.bitwise_or.at(out[i], t >> 3, (1 << (t & 7)).astype(np.uint8))
  return out


# ------------------------------------------------------------------------------------ text
def text_prompt(fmt: str, board: chess.Board, start_fen: str, history) -> str:
  """The prompt of a position for a pretrained LM. `history`: UCI moves from `start_fen`."""
  if fmt == "fen":
    return f"FEN: {board.fen()}\nBest move (UCI):"
  if fmt == "pgn":
    game = chess.Board(start_fen)
    header = "" if start_fen == chess.STARTING_FEN else f'[FEN "{start_fen}"]\n\n'
    text = header + game.variation_san([chess.Move.from_uci(m) for m in history])
    # The answer's move number belongs to the prompt: "... 12. Nf3 Nc6 13." + " Bb5".
    return text + (f" {board.fullmove_number}." if board.turn == chess.WHITE else "")
  raise ValueError(f"unknown text format {fmt!r} (fen | pgn)")


def text_answer(fmt: str, board: chess.Board, move: chess.Move) -> str:
  return " " + (move.uci() if fmt == "fen" else board.san(move))


def parse_answer(fmt: str, board: chess.Board, text: str):
  """The legal move a generated answer names, else None (illegal or unparseable)."""
  words = text.strip().split()
  if not words:
    return None
  word = words[0]
  try:
    move = chess.Move.from_uci(word) if fmt == "fen" else board.parse_san(word)
  except ValueError:
    return None
  return move if move in board.legal_moves else None
