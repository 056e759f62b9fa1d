"""Tokenizers: a byte-level one for from-scratch models, and Hugging Face ones.

Spec strings (config key `tokenizer`):
  "byte"                 bytes + 3 specials (pad 0, bos 1, eos 2), BOS prepended
  "file:PATH"            a tokenizer.json (or a folder holding one), offline
  "hf:ORG/NAME"          a Hub model's tokenizer (needs the Hub; real path on a pod)
  "hf:FOLDER"            a local Hugging Face tokenizer folder
  "gguf:FILE|NAME"       the BPE tokenizer in a GGUF file's metadata (e.g. gguf:smollm2-135m)

"hf:" reads the model's tokenizer.json with `tokenizers` where it has one; a model without one
(sentencepiece tokenizer.model, or vocab.json + merges.txt) loads through transformers'
AutoTokenizer instead (transformers imported only then). A text that already starts with the
BOS token (a chat template's output, task.chat_template) is not given a second one.
`get_tokenizer` also tells w2s_jax.data.chat which tokenizer the run uses
(task.chat_template="model" is its template).
"""
import os

import numpy as np

from w2s_jax.data import chat


class ByteTokenizer:
  pad_id, bos_id, eos_id = 0, 1, 2
  vocab_size = 259

  def encode(self, text: str) -> np.ndarray:
    body = np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32) + 3
    return np.concatenate([np.int32([self.bos_id]), body])

  def decode(self, ids) -> str:
    return bytes(int(i) - 3 for i in ids if int(i) >= 3).decode("utf-8", errors="replace")

  def encode_batch(self, texts) -> list:
    return [self.encode(t) for t in texts]


def _one_bos(ids: list, text: str, bos_id, bos_text) -> list:
  """`ids` without the tokenizer's own BOS when the text brought one already (a chat template
  that writes `bos_token` itself, as transformers' apply_chat_template expects)."""
  if (bos_id is not None and bos_text and text.startswith(bos_text) and len(ids) >= 2 and
      ids[0] == ids[1] == bos_id):
    return ids[1:]
  return ids


class HFTokenizer:
  """A Hugging Face `tokenizers.Tokenizer` with the model's own special-token template."""

  def __init__(self, tok):
    self.tok = tok
    self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
    lead = tok.encode("").ids[:1]  # what the post-processor puts before any text (a BOS)
    self._bos = (lead[0], tok.id_to_token(lead[0])) if lead else (None, None)

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(_one_bos(self.tok.encode(text).ids, text, *self._bos), np.int32)

  def encode_batch(self, texts) -> list:
    """The same ids as `encode` per text, tokenized in parallel by the Rust library."""
    texts = list(texts)
    return [np.asarray(_one_bos(e.ids, t, *self._bos), np.int32)
            for e, t in zip(self.tok.encode_batch(texts), texts)]

  def decode(self, ids) -> str:
    return self.tok.decode([int(i) for i in ids])


class TransformersTokenizer:
  """A transformers tokenizer (AutoTokenizer): models without a tokenizer.json, whose
  sentencepiece or vocab/merges files transformers converts. Special tokens as the model's
  tokenizer_config.json says (`add_special_tokens=True`)."""

  def __init__(self, tok):
    self.tok = tok
    self.vocab_size = len(tok)

  @classmethod
  def load(cls, name: str):
    try:
      from transformers import AutoTokenizer  # noqa: PLC0415  (optional: the `hf` extra)
    except ImportError:
      raise ImportError(f"config.tokenizer: hf:{name} has no tokenizer.json; loading it needs "
                        "transformers (pip install -e '.[hf]')") from None
    return cls(AutoTokenizer.from_pretrained(name))

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(_one_bos(list(self.tok.encode(text)), text, self.tok.bos_token_id,
                               self.tok.bos_token), np.int32)

  def encode_batch(self, texts) -> list:
    return [self.encode(t) for t in texts]

  def decode(self, ids) -> str:
    return self.tok.decode([int(i) for i in ids])


def _hf(name: str):
  """hf:ORG/NAME or hf:FOLDER: its tokenizer.json through `tokenizers`, else transformers."""
  from tokenizers import Tokenizer  # noqa: PLC0415
  if os.path.isdir(name):
    path = os.path.join(name, "tokenizer.json")
    if os.path.exists(path):
      return HFTokenizer(Tokenizer.from_file(path))
    return TransformersTokenizer.load(name)
  from huggingface_hub import hf_hub_download  # noqa: PLC0415
  from huggingface_hub.errors import RemoteEntryNotFoundError  # noqa: PLC0415
  try:
    path = hf_hub_download(name, "tokenizer.json")
  except RemoteEntryNotFoundError:  # the repository has no tokenizer.json
    return TransformersTokenizer.load(name)
  return HFTokenizer(Tokenizer.from_file(path))


def _build(spec: str):
  if spec == "byte":
    return ByteTokenizer()
  if spec.startswith("file:"):
    from tokenizers import Tokenizer  # noqa: PLC0415  (heavy import only when used)
    path = spec[len("file:"):]
    if os.path.isdir(path):
      path = os.path.join(path, "tokenizer.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"config.tokenizer: no tokenizer file at {path}")
    return HFTokenizer(Tokenizer.from_file(path))
  if spec.startswith("hf:"):
    return _hf(spec[len("hf:"):])
  if spec.startswith("gguf:"):
    from w2s_jax.models import gguf_checkpoint  # noqa: PLC0415
    return HFTokenizer(gguf_checkpoint.tokenizer(spec[len("gguf:"):]))
  raise ValueError(f"config.tokenizer: unknown spec {spec!r} (byte | file:PATH | hf:ORG/NAME | "
                   "hf:FOLDER | gguf:FILE)")


def get_tokenizer(spec: str):
  tok = _build(spec)
  chat.bind(spec)  # task.chat_template="model": this tokenizer's template
  return tok
