"""Multi-process start-up and coordination.

`initialize` must run before anything touches a device. It is explicit with a coordinator
address, process count and id (flags or W2S_COORDINATOR_ADDRESS / W2S_NUM_PROCESSES /
W2S_PROCESS_ID), and automatic where jax detects a cluster (a multi-host TPU VM, SLURM with
several tasks). Process 0 writes results, logs and stage files; every process runs the same
compiled programs and takes part in every orbax save.

Every wait on the other processes is bounded by the peer timeout (W2S_PEER_TIMEOUT_S, default
60 s): a barrier that does not complete in time raises DistributedError naming the barrier (its
name carries the stage) and the processes that did not arrive; jax's heartbeats declare a silent
process (killed, stopped, cut off) lost after the same time, and jax then ends the survivors
itself ("Terminating process because the JAX distributed service detected fatal errors"), also
during a collective that no barrier guards.
"""
import logging
import math
import os
import re

from w2s_jax.errors import ConfigError, DistributedError

log = logging.getLogger("w2s_jax")

DEFAULT_PEER_TIMEOUT_S = 60.0
_STATE = {"timeout_s": None}


def peer_timeout_s() -> float:
  """Seconds a process waits for the others: initialize's argument, else W2S_PEER_TIMEOUT_S."""
  if _STATE["timeout_s"]:
    return _STATE["timeout_s"]
  value = os.environ.get("W2S_PEER_TIMEOUT_S", "")
  if not value:
    return DEFAULT_PEER_TIMEOUT_S
  try:
    timeout = float(value)
  except ValueError:
    timeout = -1.0
  if not timeout > 0:
    raise ConfigError(f"W2S_PEER_TIMEOUT_S={value!r}: must be a number of seconds > 0")
  return timeout


def _auto_cluster() -> bool:
  """A multi-process cluster that jax.distributed.initialize() can configure by itself."""
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:
    return True
  return "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def initialize(coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1, timeout_s: float | None = None) -> None:
  import jax  # noqa: PLC0415

  address = coordinator_address or os.environ.get("W2S_COORDINATOR_ADDRESS", "")
  n = num_processes or int(os.environ.get("W2S_NUM_PROCESSES", "0"))
  pid = process_id if process_id >= 0 else int(os.environ.get("W2S_PROCESS_ID", "-1"))
  _STATE["timeout_s"] = timeout_s or peer_timeout_s()
  bound = max(1, math.ceil(_STATE["timeout_s"]))
  # Heartbeats and the exit handshake get the same bound: jax's defaults (100 s, 300 s) would
  # keep a survivor waiting on a lost peer for minutes.
  timeouts = dict(heartbeat_timeout_seconds=bound, shutdown_timeout_seconds=bound)
  try:
    if address:
      if n < 1 or not 0 <= pid < n:
        raise ConfigError(f"--coordinator_address={address} needs --num_processes >= 1 and "
                          f"0 <= --process_id < num_processes (got {n}, {pid})")
      jax.distributed.initialize(address, n, pid, **timeouts)
    elif _auto_cluster():
      jax.distributed.initialize(**timeouts)
  except jax.errors.JaxRuntimeError as e:
    raise DistributedError(f"process {pid} could not join the run at {address or 'auto'}: "
                           f"{str(e).splitlines()[0]}") from None
  log.info("process %d of %d; local devices %s; %d devices in all", jax.process_index(),
           jax.process_count(), jax.local_devices(), jax.device_count())


def is_main() -> bool:
  import jax  # noqa: PLC0415
  return jax.process_index() == 0


def _client():
  from jax._src import distributed as jax_distributed  # noqa: PLC0415  (no public accessor)
  return jax_distributed.global_state.client


def _absent(message: str) -> str:
  """Which processes a failed barrier names, from the coordination service's message."""
  m = re.search(r"timed out task names:\s*((?:\d+\s*)+)", message)
  if m:
    ids = m.group(1).split()
    return f"process{'es' if len(ids) > 1 else ''} {', '.join(ids)} did not arrive in time"
  lost = sorted(set(re.findall(r"[Tt]ask (\d+) heartbeat timeout", message)))
  if lost:
    return f"process {', '.join(lost)} stopped sending heartbeats (lost)"
  if "Failed to send RPC to coordination service" in message:
    return "process 0 (the coordinator) is unreachable"
  return message.splitlines()[0]


def barrier(name: str, timeout_s: float | None = None) -> None:
  """All processes reach this point before any goes on (no-op with one process); raises
  DistributedError after `timeout_s` (default: the peer timeout)."""
  import jax  # noqa: PLC0415
  if jax.process_count() == 1:
    return
  client = _client()
  if client is None:  # initialized by someone else's code path: no key-value store to ask
    from jax.experimental import multihost_utils  # noqa: PLC0415
    multihost_utils.sync_global_devices(name)
    return
  timeout = timeout_s or peer_timeout_s()
  try:
    client.wait_at_barrier(name, max(1, int(timeout * 1000)))
  except jax.errors.JaxRuntimeError as e:
    raise DistributedError(
        f"barrier {name!r} (process {jax.process_index()} of {jax.process_count()}) did not "
        f"complete within {timeout:.0f} s: {_absent(str(e))}; the run stops (rerun to resume; "
        "W2S_PEER_TIMEOUT_S sets the bound)") from None
