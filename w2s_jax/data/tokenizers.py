"""Tokenizers: a byte-level one for from-scratch models, and Hugging Face `tokenizers`.

Spec strings (config key `tokenizer`):
  "byte"                 bytes + 3 specials (pad 0, bos 1, eos 2), BOS prepended
  "file:PATH"            a tokenizer.json (or a folder holding one), offline
  "hf:ORG/NAME"          tokenizer.json of a Hub model (needs the Hub; real path on a pod)
  "gguf:FILE|NAME"       the BPE tokenizer in a GGUF file's metadata (e.g. gguf:smollm2-135m)
"""
import os

import numpy as np


class ByteTokenizer:
  pad_id, bos_id, eos_id = 0, 1, 2
  vocab_size = 259

  def encode(self, text: str) -> np.ndarray:
    body = np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32) + 3
    return np.concatenate([np.int32([self.bos_id]), body])

  def decode(self, ids) -> str:
    return bytes(int(i) - 3 for i in ids if int(i) >= 3).decode("utf-8", errors="replace")


class HFTokenizer:
  """A Hugging Face `tokenizers.Tokenizer` with the model's own special-token template."""

  def __init__(self, tok):
    self.tok = tok
    self.vocab_size = tok.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(self.tok.encode(text).ids, np.int32)

  def decode(self, ids) -> str:
    return self.tok.decode([int(i) for i in ids])


def get_tokenizer(spec: str):
  from tokenizers import Tokenizer  # noqa: PLC0415  (heavy import only when used)
  if spec == "byte":
    return ByteTokenizer()
  if spec.startswith("file:"):
    path = spec[len("file:"):]
    if os.path.isdir(path):
      path = os.path.join(path, "tokenizer.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"config.tokenizer: no tokenizer file at {path}")
    return HFTokenizer(Tokenizer.from_file(path))
  if spec.startswith("hf:"):
    return HFTokenizer(Tokenizer.from_pretrained(spec[len("hf:"):]))
  if spec.startswith("gguf:"):
    from w2s_jax.models import gguf_checkpoint  # noqa: PLC0415
    return HFTokenizer(gguf_checkpoint.tokenizer(spec[len("gguf:"):]))
  raise ValueError(f"config.tokenizer: unknown spec {spec!r} (byte | file:PATH | hf:ORG/NAME | gguf:FILE)")
