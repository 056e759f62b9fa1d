"""Every error a user can cause, as one type with a category; a leaf module (imports nothing).

`main` prints a W2SError as one line, "<category> error: <message>", and exits non-zero. A message
names what is wrong, where (config key, file:line, stage) and, where there is one, the fix.
"""


class W2SError(Exception):
  category = "error"


class ConfigError(W2SError, ValueError):
  """A config value that cannot work; the message names the key."""
  category = "config"


class DataError(W2SError, ValueError):
  """A malformed input file or row; the message names the file (or split) and the line (or row)."""
  category = "data"


class CheckpointError(W2SError, ValueError):
  """A checkpoint that cannot be read or does not fit the model."""
  category = "checkpoint"


class AssetError(W2SError, OSError):
  """An external asset (a pinned data or weights package) that cannot be had; the message names
  the asset, where it was sought and the knob that points at a local copy or drops it."""
  category = "asset"


class WorkdirError(W2SError, OSError):
  """The work directory cannot be written or holds damaged files."""
  category = "workdir"


class DistributedError(W2SError, RuntimeError):
  """A process of a multi-process run was lost or did not answer in time."""
  category = "distributed"


class NonFiniteLoss(W2SError, FloatingPointError):
  """Training diverged; the last good checkpoint is kept."""
  category = "training diverged"


class Preempted(W2SError, RuntimeError):
  """Training stopped on a preemption notice after saving a checkpoint; rerun to resume."""
  category = "preempted"
