"""Encodings of puzzles for training (codecs) and batched, jitted greedy decoding of answers.

A codec turns positions into a tokenized Dataset, answers (a supervisor's predictions) into
training targets, and a model's outputs into moves (UCI, "" when not a legal move):
  native   rank or square tokens; one answer token over the 1,880 moves: greedy decoding is one
           forward pass and an argmax, optionally over the position's legal moves only
           (legal_mask).
  fen|pgn  the position as text through the model's tokenizer, the answer as text tokens ending
           in a newline: trained with next-token loss on the answer tokens only; decoded greedily
           with a KV cache (w2s_jax.models.generate).
"""
import chess
import numpy as np

from w2s_jax.chess import encoding
from w2s_jax.data import dataset as data_lib
from w2s_jax.data.tasks import DataError
from w2s_jax.data.tokenizers import get_tokenizer


class NativeCodec:
  def __init__(self, max_len: int, buckets, layout: str = "ranks"):
    self.length, self.vocab_size, self.ids = encoding.LAYOUTS[layout]
    if max_len < self.length:
      raise ValueError(f"config.max_len: the native encoding with chess.layout={layout!r} needs "
                       f"{self.length}, got {max_len}")
    self.max_len, self.buckets, self.layout = max_len, buckets, layout
    self.spec = "native" if layout == "ranks" else f"native:{layout}"  # ranks: the keys before

  def dataset(self, positions) -> data_lib.Dataset:
    tokens = np.zeros((len(positions), self.max_len, self.ids), np.int32)
    labels = np.zeros(len(positions), np.int32)
    for i, p in enumerate(positions):
      board = p.board()
      tokens[i, :self.length] = encoding.board_tokens(board, self.layout)
      labels[i] = encoding.move_token(board, chess.Move.from_uci(p.answer))
    return data_lib.Dataset(tokens, np.full(len(positions), self.length, np.int32), labels)

  def training(self, ds, positions, answers=None):
    """(rows, targets) to train on: the ground truth, or a supervisor's answers (hard labels)."""
    return ds, ds.labels if answers is None else np.asarray(answers, np.int32)

  def legal(self, positions) -> np.ndarray:
    """Each position's legal moves as bit sets over the vocabulary (a legal-move loss)."""
    return encoding.legal_bits([p.board() for p in positions], self.vocab_size)

  def answers(self, trainer, params, ds, positions, legal_mask: bool, batch_size: int):
    # Masked on the logits: after a softmax, legal moves whose probabilities underflow to 0
    # would tie, and the first of them would win.
    logits = trainer.predict(params, ds, batch_size, self.buckets, what="logits")
    if legal_mask:
      mask = np.zeros_like(logits, dtype=bool)
      for i, p in enumerate(positions):
        mask[i, encoding.legal_tokens(p.board())] = True
      logits = np.where(mask, logits, -np.inf)
    return np.argmax(logits, -1).astype(np.int32)

  def moves(self, answers, positions) -> np.ndarray:
    out = []
    for token, p in zip(answers, positions):
      board = p.board()
      move = encoding.token_move(board, int(token))
      out.append(move.uci() if move is not None and move in board.legal_moves else "")
    return np.array(out, dtype=object)


class TextCodec:
  """Text prompts through the model's tokenizer; answers are token sequences ending in "\n"."""

  def __init__(self, fmt: str, tokenizer: str, max_len: int, answer_len: int, buckets):
    self.fmt, self.max_len, self.answer_len, self.buckets = fmt, max_len, answer_len, buckets
    self.tok = get_tokenizer(tokenizer)
    self.vocab_size = self.tok.vocab_size
    self.spec = f"{fmt}:{tokenizer}:{answer_len}"
    stop = self.tok.encode("x\n")
    self.stop_id = int(stop[-1])  # the newline that ends an answer

  def _prompt(self, p):
    return encoding.text_prompt(self.fmt, p.board(), p.start_fen, p.history)

  def dataset(self, positions) -> data_lib.Dataset:
    """The prompts (right-padded); labels are unused (answers are sequences: `training`)."""
    tokens = np.zeros((len(positions), self.max_len), np.int32)
    lengths = np.zeros(len(positions), np.int32)
    for i, p in enumerate(positions):
      t = self.tok.encode(self._prompt(p))
      if len(t) + self.answer_len > self.max_len:
        raise DataError(f"position {p.id}: its {self.fmt} prompt has {len(t)} tokens; with "
                        f"chess.answer_len={self.answer_len} it exceeds max_len={self.max_len} "
                        "(raise max_len, or use the fen encoding)")
      tokens[i, :len(t)], lengths[i] = t, len(t)
    return data_lib.Dataset(tokens, lengths, np.zeros(len(positions), np.int32))

  def _answer_ids(self, prompt: str, head: np.ndarray, text: str, where: str) -> np.ndarray:
    """The ids `text` adds after `prompt` (whose ids are `head`)."""
    full = self.tok.encode(prompt + text)
    if len(full) < len(head) or not np.array_equal(full[:len(head)], head):
      raise DataError(f"{where}: the tokenizer merges the answer {text!r} into the prompt")
    return full[len(head):]

  def training(self, ds, positions, answers=None):
    """Rows prompt + answer and their answer ids [N, answer_len] (-1 padded): the ground truth
    move as text, or a supervisor's generated ids up to and including its first newline."""
    rows = np.full((len(ds), self.answer_len), -1, np.int32)
    for i, p in enumerate(positions):
      if answers is None:
        board = p.board()
        a = self._answer_ids(self._prompt(p), ds.tokens[i, :ds.lengths[i]], encoding.text_answer(
            self.fmt, board, chess.Move.from_uci(p.answer)) + "\n", f"position {p.id}")
        if len(a) > self.answer_len:
          raise DataError(f"position {p.id}: its answer has {len(a)} tokens, more than "
                          f"chess.answer_len={self.answer_len}")
      else:
        a = self._cut(answers[i])
      rows[i, :len(a)] = a
    n = (rows >= 0).sum(-1)
    tokens = ds.tokens.copy()
    for i in range(len(ds)):
      tokens[i, ds.lengths[i]:ds.lengths[i] + n[i]] = rows[i, :n[i]]
    return data_lib.Dataset(tokens, ds.lengths + n, ds.labels), rows

  def _cut(self, ids) -> np.ndarray:
    """Generated ids up to and including the first newline."""
    stop = np.flatnonzero(np.asarray(ids) == self.stop_id)
    return np.asarray(ids[:stop[0] + 1] if len(stop) else ids, np.int32)

  def answers(self, trainer, params, ds, positions, legal_mask: bool, batch_size: int):
    del positions, legal_mask  # masking is validated away for text encodings
    return trainer.generate(params, ds, self.answer_len, batch_size, self.buckets)

  def moves(self, answers, positions) -> np.ndarray:
    out = []
    for ids, p in zip(answers, positions):
      move = encoding.parse_answer(self.fmt, p.board(), self.tok.decode(self._cut(ids)))
      out.append(move.uci() if move else "")
    return np.array(out, dtype=object)


def codec(name: str, tokenizer: str, max_len: int, answer_len: int, buckets,
          layout: str = "ranks"):
  if name == "native":
    return NativeCodec(max_len, buckets, layout)
  if name in ("fen", "pgn"):
    return TextCodec(name, tokenizer, max_len, answer_len, buckets)
  raise ValueError(f"config.chess.encoding: unknown encoding {name!r} (native | fen | pgn)")
