"""Cached pipeline stages, keyed by a content hash of everything that determines their outputs.

A stage folder `WORKDIR/stages/KIND-KEY/` holds spec.json (what the key hashes), params/ (orbax),
arrays.npz (predictions), metrics.json and, while training, ckpt/ (resumable training
checkpoints). COMMIT is written last, once every output is durable on every process: a folder
without it is unfinished (a crash, a kill, a preemption) and is resumed from ckpt/, never read.
No rename is needed, so the same protocol works on a local disk and on a bucket (gs://).
"""
import hashlib
import io
import json

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from w2s_jax import distributed


def stage_key(spec: dict) -> str:
  blob = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StageStore:
  def __init__(self, workdir: str):
    self.root = epath.Path(workdir) / "stages"
    if distributed.is_main():
      self.root.mkdir(parents=True, exist_ok=True)
    distributed.barrier("stage store")

  def path(self, kind: str, key: str) -> epath.Path:
    return self.root / f"{kind}-{key}"

  def ckpt_dir(self, kind: str, key: str) -> str:
    return str(self.path(kind, key) / "ckpt")

  def done(self, kind: str, key: str) -> bool:
    return (self.path(kind, key) / "COMMIT").exists()

  def save(self, kind: str, key: str, spec: dict, *, params=None, arrays=None, metrics=None):
    """Write a finished stage (every process calls this: orbax saves are collective)."""
    path = self.path(kind, key)
    if distributed.is_main():
      path.mkdir(parents=True, exist_ok=True)
    distributed.barrier(f"stage {kind}-{key} folder")
    if params is not None:
      with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path / "params", params, force=True)
        ckpt.wait_until_finished()
    if distributed.is_main():
      buf = io.BytesIO()
      np.savez(buf, **(arrays or {}))
      (path / "arrays.npz").write_bytes(buf.getvalue())
      (path / "spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True, default=str))
      (path / "metrics.json").write_text(json.dumps(metrics or {}, indent=1, sort_keys=True))
    distributed.barrier(f"stage {kind}-{key} written")
    if distributed.is_main():
      (path / "COMMIT").write_text("")
      ckpt = path / "ckpt"
      if ckpt.exists():  # training checkpoints are not needed once the stage is committed
        ckpt.rmtree()
    distributed.barrier(f"stage {kind}-{key} committed")

  def arrays(self, kind: str, key: str) -> dict:
    with np.load(io.BytesIO((self.path(kind, key) / "arrays.npz").read_bytes())) as z:
      return dict(z)

  def metrics(self, kind: str, key: str) -> dict:
    return json.loads((self.path(kind, key) / "metrics.json").read_text())

  def params(self, kind: str, key: str, abstract, shardings):
    """Restore into the CURRENT mesh: targets carry today's shardings, not the saved ones."""
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
    with ocp.StandardCheckpointer() as ckpt:
      return ckpt.restore(self.path(kind, key) / "params", target)
