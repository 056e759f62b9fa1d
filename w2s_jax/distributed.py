"""Multi-process start-up and coordination.

`initialize` must run before anything touches a device. It is explicit with a coordinator
address, process count and id (flags or W2S_COORDINATOR_ADDRESS / W2S_NUM_PROCESSES /
W2S_PROCESS_ID), and automatic where jax detects a cluster (a multi-host TPU VM, SLURM with
several tasks). Process 0 writes results, logs and stage files; every process runs the same
compiled programs and takes part in every orbax save.
"""
import logging
import os

log = logging.getLogger("w2s_jax")


def _auto_cluster() -> bool:
  """A multi-process cluster that jax.distributed.initialize() can configure by itself."""
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:
    return True
  return "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def initialize(coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1) -> None:
  import jax  # noqa: PLC0415

  address = coordinator_address or os.environ.get("W2S_COORDINATOR_ADDRESS", "")
  n = num_processes or int(os.environ.get("W2S_NUM_PROCESSES", "0"))
  pid = process_id if process_id >= 0 else int(os.environ.get("W2S_PROCESS_ID", "-1"))
  if address:
    if n < 1 or not 0 <= pid < n:
      raise ValueError(f"--coordinator_address={address} needs --num_processes >= 1 and "
                       f"0 <= --process_id < num_processes (got {n}, {pid})")
    jax.distributed.initialize(address, n, pid)
  elif _auto_cluster():
    jax.distributed.initialize()
  log.info("process %d of %d; local devices %s; %d devices in all", jax.process_index(),
           jax.process_count(), jax.local_devices(), jax.device_count())


def is_main() -> bool:
  import jax  # noqa: PLC0415
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """All processes reach this point before any goes on (no-op with one process)."""
  import jax  # noqa: PLC0415
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415
    multihost_utils.sync_global_devices(name)
