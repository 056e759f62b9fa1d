"""--threads 1 for the benchmark scripts: XLA single-threaded, set before jax is imported (XLA
reads its flags once), so one core's numbers sit beside torch.set_num_threads(1)."""
import os
import sys


def threads_from_argv() -> int:
  for i, arg in enumerate(sys.argv):
    if arg.startswith("--threads"):
      return int(arg.split("=", 1)[1] if "=" in arg else sys.argv[i + 1])
  return 0


def single_thread_xla_if_asked() -> None:
  if threads_from_argv() == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                               "false intra_op_parallelism_threads=1").strip()
