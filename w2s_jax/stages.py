"""Cached pipeline stages, keyed by a content hash of everything that determines their outputs.

A stage folder `WORKDIR/stages/KIND-KEY/` holds spec.json (what the key hashes), params/ (orbax),
arrays.npz (predictions) and metrics.json. It is written under a temporary name and renamed into
place when complete, so a crash or a kill never leaves a half-written stage that looks finished.
"""
import hashlib
import json
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp


def stage_key(spec: dict) -> str:
  blob = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StageStore:
  def __init__(self, workdir: str):
    self.root = os.path.abspath(os.path.join(workdir, "stages"))
    os.makedirs(self.root, exist_ok=True)

  def path(self, kind: str, key: str) -> str:
    return os.path.join(self.root, f"{kind}-{key}")

  def done(self, kind: str, key: str) -> bool:
    return os.path.exists(os.path.join(self.path(kind, key), "metrics.json"))

  def save(self, kind: str, key: str, spec: dict, *, params=None, arrays=None, metrics=None):
    final = self.path(kind, key)
    tmp = f"{final}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if params is not None:
      with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(os.path.join(tmp, "params"), params)
        ckpt.wait_until_finished()
    np.savez(os.path.join(tmp, "arrays.npz"), **(arrays or {}))
    with open(os.path.join(tmp, "spec.json"), "w") as f:
      json.dump(spec, f, indent=1, sort_keys=True, default=str)
    with open(os.path.join(tmp, "metrics.json"), "w") as f:  # written last: marks completeness
      json.dump(metrics or {}, f, indent=1, sort_keys=True)
    if os.path.exists(final):  # an older incomplete copy (no rename can have completed it)
      shutil.rmtree(final)
    os.rename(tmp, final)

  def arrays(self, kind: str, key: str) -> dict:
    with np.load(os.path.join(self.path(kind, key), "arrays.npz")) as z:
      return dict(z)

  def metrics(self, kind: str, key: str) -> dict:
    with open(os.path.join(self.path(kind, key), "metrics.json")) as f:
      return json.load(f)

  def params(self, kind: str, key: str, abstract, shardings):
    """Restore into the CURRENT mesh: targets carry today's shardings, not the saved ones."""
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
    with ocp.StandardCheckpointer() as ckpt:
      return ckpt.restore(os.path.join(self.path(kind, key), "params"), target)
