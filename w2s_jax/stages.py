"""Cached pipeline stages, keyed by a content hash of everything that determines their outputs.

A stage folder `WORKDIR/stages/KIND-KEY/` holds spec.json (what the key hashes), params/ (orbax),
arrays.npz (predictions), metrics.json and, while training, ckpt/ (resumable training
checkpoints). COMMIT is written last, once every output is durable on every process: a folder
without it is unfinished (a crash, a kill, a preemption) and is resumed from ckpt/, never read.
No rename is needed, so the same protocol works on a local disk and on a bucket (gs://).

COMMIT records the size and sha256 of every file of the stage. `done` checks them (once per
process and stage), so a truncated or bit-flipped output is recomputed, never read; `arrays` and
`metrics` check the file they read against its record as well.
"""
import hashlib
import io
import json
import logging
import zipfile

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from w2s_jax import distributed, files
from w2s_jax.errors import WorkdirError

log = logging.getLogger("w2s_jax")
_CHUNK = 1 << 22


def _digest(data: bytes) -> dict:
  return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _file_digest(path: epath.Path) -> dict:
  """Size and sha256 of a file, streamed (parameters may not fit in memory twice)."""
  h, n = hashlib.sha256(), 0
  with path.open("rb") as f:
    while chunk := f.read(_CHUNK):
      h.update(chunk)
      n += len(chunk)
  return {"size": n, "sha256": h.hexdigest()}


def _stage_files(folder: epath.Path, prefix: str = "") -> list[str]:
  """Every file of a stage folder (relative, "/"-separated), except COMMIT and ckpt/."""
  out = []
  for p in folder.iterdir():
    rel = prefix + p.name
    if p.is_dir():
      if rel != "ckpt":
        out += _stage_files(p, rel + "/")
    elif rel != "COMMIT":
      out.append(rel)
  return sorted(out)


def stage_key(spec: dict) -> str:
  blob = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StageStore:
  def __init__(self, workdir: str):
    self.root = epath.Path(workdir) / "stages"
    self._verified = set()  # stages whose files matched COMMIT in this process
    if distributed.is_main():
      self.root.mkdir(parents=True, exist_ok=True)
    distributed.barrier("stage store")

  def path(self, kind: str, key: str) -> epath.Path:
    return self.root / f"{kind}-{key}"

  def ckpt_dir(self, kind: str, key: str) -> str:
    return str(self.path(kind, key) / "ckpt")

  def done(self, kind: str, key: str) -> bool:
    """Committed, and every file as committed; a damaged stage is logged and counts as not done,
    so the caller recomputes it (save() replaces its files and COMMIT)."""
    if (kind, key) in self._verified:
      return True
    if not (self.path(kind, key) / "COMMIT").exists():
      return False
    problems = self._damage(kind, key)
    if problems:
      log.warning("stage %s-%s is damaged (%s): recomputing it", kind, key,
                  "; ".join(problems[:5]) + (f"; {len(problems) - 5} more" if len(problems) > 5
                                             else ""))
      return False
    self._verified.add((kind, key))
    return True

  def _record(self, kind: str, key: str) -> dict | None:
    """COMMIT's {file: {size, sha256}}; None for a stage committed before COMMIT recorded
    hashes (an empty file): such stages still count as done, with nothing to check."""
    text = (self.path(kind, key) / "COMMIT").read_text()
    if not text.strip():
      return None
    try:
      return json.loads(text)["files"]
    except (ValueError, KeyError, TypeError):
      raise WorkdirError(f"stage {kind}-{key}: COMMIT is unreadable") from None

  def _damage(self, kind: str, key: str) -> list[str]:
    """What differs between the stage's files and its COMMIT record (empty: nothing)."""
    try:
      record = self._record(kind, key)
    except WorkdirError:
      return ["COMMIT is unreadable"]
    folder, problems = self.path(kind, key), []
    for name, want in sorted((record or {}).items()):
      path = folder / name
      if not path.exists():
        problems.append(f"{name} is missing")
        continue
      size = path.stat().length
      if size != want["size"]:  # cheap: no need to hash a file of the wrong size
        problems.append(f"{name} has {size:,} bytes, {want['size']:,} when committed")
      elif _file_digest(path)["sha256"] != want["sha256"]:
        problems.append(f"{name} differs from its committed sha256")
    return problems

  def _read(self, kind: str, key: str, name: str) -> bytes:
    """A stage file's bytes, checked against COMMIT: damaged outputs are never used."""
    path = self.path(kind, key) / name
    try:
      data = path.read_bytes()
    except FileNotFoundError:
      raise WorkdirError(f"stage {kind}-{key}: {name} is missing; delete {self.path(kind, key)} "
                         "to recompute the stage") from None
    want = (self._record(kind, key) or {}).get(name)
    if want and _digest(data) != want:
      raise WorkdirError(f"stage {kind}-{key}: {name} changed after the stage was committed; "
                         f"delete {self.path(kind, key)} to recompute the stage")
    return data

  def save(self, kind: str, key: str, spec: dict, *, params=None, arrays=None, metrics=None):
    """Write a finished stage (every process calls this: orbax saves are collective)."""
    path = self.path(kind, key)
    self._verified.discard((kind, key))
    if distributed.is_main():
      path.mkdir(parents=True, exist_ok=True)
      if (path / "COMMIT").exists():  # a damaged stage being recomputed: uncommit it first
        (path / "COMMIT").unlink()
    distributed.barrier(f"stage {kind}-{key} folder")
    if params is not None:
      with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path / "params", params, force=True)
        ckpt.wait_until_finished()
    if distributed.is_main():
      buf = io.BytesIO()
      np.savez(buf, **(arrays or {}))
      (path / "arrays.npz").write_bytes(buf.getvalue())
      files.atomic_write_text(path / "spec.json",
                              json.dumps(spec, indent=1, sort_keys=True, default=str))
      files.atomic_write_text(path / "metrics.json",
                              json.dumps(metrics or {}, indent=1, sort_keys=True))
    distributed.barrier(f"stage {kind}-{key} written")
    if distributed.is_main():  # hashed as read back: what COMMIT vouches for is what is stored
      record = {name: _file_digest(path / name) for name in _stage_files(path)}
      files.atomic_write_text(path / "COMMIT", json.dumps({"files": record}, indent=1))
      ckpt = path / "ckpt"
      if ckpt.exists():  # training checkpoints are not needed once the stage is committed
        ckpt.rmtree()
    # The other processes wait while process 0 hashes the parameters: allow for reading them.
    nbytes = sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(params))
    distributed.barrier(f"stage {kind}-{key} committed",
                        timeout_s=distributed.peer_timeout_s() + nbytes / 50e6)
    self._verified.add((kind, key))

  def arrays(self, kind: str, key: str) -> dict:
    data = self._read(kind, key, "arrays.npz")
    try:
      with np.load(io.BytesIO(data)) as z:
        return dict(z)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:  # a pre-hash stage's damage
      raise WorkdirError(f"stage {kind}-{key}: arrays.npz cannot be read ({e}); delete "
                         f"{self.path(kind, key)} to recompute the stage") from None

  def metrics(self, kind: str, key: str) -> dict:
    data = self._read(kind, key, "metrics.json")
    try:
      return json.loads(data)
    except ValueError as e:
      raise WorkdirError(f"stage {kind}-{key}: metrics.json cannot be read ({e}); delete "
                         f"{self.path(kind, key)} to recompute the stage") from None

  def params(self, kind: str, key: str, abstract, shardings):
    """Restore into the CURRENT mesh: targets carry today's shardings, not the saved ones."""
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
    with ocp.StandardCheckpointer() as ckpt:
      return ckpt.restore(self.path(kind, key) / "params", target)
