"""Training checkpoints: periodic, on preemption, asynchronous, restorable on another mesh.

Orbax's CheckpointManager saves in the background and keeps the latest N. A save is due every
`every` steps and when the run is being preempted: SIGTERM in a single process, JAX's preemption
sync point (which every host reaches at the same step) with several. Restores go into the
shardings of the CURRENT mesh, so a run saved on 8 devices resumes on 4 or on 1.
"""
import logging
import signal
import threading

import jax
import orbax.checkpoint as ocp

from w2s_jax.errors import Preempted

log = logging.getLogger("w2s_jax")


_SIGTERM = {"installed": False, "received": False}


def watch_sigterm() -> None:
  """Record SIGTERM instead of dying, so the loop can save first (single process; with several,
  jax.distributed's preemption notifier handles it and all hosts agree on the step)."""
  if _SIGTERM["installed"] or jax.process_count() > 1 or \
      threading.current_thread() is not threading.main_thread():
    return

  def handler(signum, frame):
    del signum, frame
    _SIGTERM["received"] = True
    log.warning("SIGTERM: saving a checkpoint at the next step, then stopping")

  signal.signal(signal.SIGTERM, handler)
  _SIGTERM["installed"] = True


def clear_preemption() -> None:
  """Forget a recorded SIGTERM (a process that goes on after handling one, such as a test)."""
  _SIGTERM["received"] = False


def preemption_requested(manager, step: int) -> bool:
  return _SIGTERM["received"] or manager.reached_preemption(step)


class TrainCheckpoints:
  def __init__(self, directory: str, every: int, keep: int):
    self.every = every
    self.manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=True, create=True))

  def latest_step(self):
    return self.manager.latest_step()

  def restore(self, step: int, like):
    """Restore `step` with the shapes, dtypes and (current) shardings of the pytree `like`."""
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                          like)
    return self.manager.restore(step, args=ocp.args.StandardRestore(target))

  def due(self, step: int) -> tuple[bool, bool]:
    """(save now, because of preemption)."""
    preempt = preemption_requested(self.manager, step)
    return preempt or (self.every > 0 and step % self.every == 0), preempt

  def save(self, step: int, state) -> None:
    self.manager.check_for_errors()  # surface a failed earlier async save now, not never
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.check_for_errors()
    self.manager.close()
