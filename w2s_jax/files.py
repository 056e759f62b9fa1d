"""Files rewritten in place, written so that a kill or a second writer never leaves a torn one.

`atomic_write_text` writes a temporary file beside the target, flushes it to disk and renames it
over the target (atomic on POSIX file systems). `locked` serialises the processes that
read-modify-write one file (results.json) with an exclusive lock on a `.lock` file beside it.
Local paths only for the lock; other paths (gs://) fall back to a plain write, which their object
stores make atomic per object.
"""
import contextlib
import math
import fcntl
import os
import tempfile

import numpy as np
from etils import epath


def _local(path) -> bool:
  return "://" not in str(path)


def atomic_write_text(path, text: str) -> None:
  path = epath.Path(path)
  if not _local(path):
    path.write_text(text)
    return
  fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, str(path))
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


@contextlib.contextmanager
def locked(path):
  """Hold an exclusive lock on PATH.lock for the duration (blocks until other holders leave)."""
  if not _local(path):
    yield
    return
  with open(f"{path}.lock", "a") as f:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def json_safe(x):
  """JSON has no NaN: write null."""
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if isinstance(x, dict):
    return {k: json_safe(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [json_safe(v) for v in x]
  if isinstance(x, np.generic):
    return json_safe(x.item())
  return x
