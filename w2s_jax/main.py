"""Run a weak-to-strong experiment:

  python -m w2s_jax.main --config=configs/nlp.py:tiny --workdir=DIR [--config.a.b=value ...]

Several processes (one per host): add --coordinator_address=HOST:PORT --num_processes=N
--process_id=I (or the W2S_* environment variables); on a TPU VM pod or under SLURM they are found
automatically. --dry_run compiles the run's heaviest program (the strong model's train step, or a
frozen model's forward) and prints its memory and FLOPs.
"""
import errno
import logging
import os
import sys

from absl import app, flags, logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where stages, results and logs are written.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "HOST:PORT of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Compile the run's heaviest program (the strong "
                             "model's train step as fit runs it, or a frozen model's forward) "
                             "for the config's mesh; print memory per device and FLOPs; do not "
                             "train.")
_TOPOLOGY = flags.DEFINE_string("topology", "", "With --dry_run: compile for a TPU slice "
                                "described on this CPU, e.g. v5e:4x4 (needs libtpu).")
_PLAN = flags.DEFINE_bool("plan", False, "Print the stage graph (every stage, its key, cached or "
                          "to run, its cost) and exit without running anything.")
_ONLY = flags.DEFINE_list("only", [], "Run only the stages of these kinds (and what they need), "
                          "e.g. corpus or corpus,pretrain; no results are written.")
_FAKE_DEVICES = flags.DEFINE_integer("fake_devices", 0, "With --dry_run: this many fake CPU "
                                     "devices (a mesh larger than this machine).")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  if _DRY_RUN.value and _FAKE_DEVICES.value:  # must precede the first use of jax
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={_FAKE_DEVICES.value}")
  from w2s_jax import distributed  # noqa: PLC0415

  # Libraries (orbax) log every save at INFO: keep theirs at WARNING, ours at INFO on process 0.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("w2s_jax").setLevel(logging.INFO)
  if not _DRY_RUN.value:
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  from w2s_jax import experiment  # noqa: PLC0415
  from w2s_jax.errors import W2SError  # noqa: PLC0415

  if not distributed.is_main():
    logging.getLogger("w2s_jax").setLevel(logging.WARNING)
  cfg = _CONFIG.value
  if _DRY_RUN.value:
    from w2s_jax import dry_run  # noqa: PLC0415
    try:
      print(dry_run.report(cfg, topology=_TOPOLOGY.value), flush=True)
    except dry_run.DoesNotFit as e:
      sys.exit(f"does not fit: {e}")
    except W2SError as e:
      sys.exit(f"{e.category} error: {e}")
    except ValueError as e:
      sys.exit(f"dry run error: {e}")
    return
  if not _WORKDIR.value:
    sys.exit("flag error: --workdir is required (except with --dry_run)")
  try:
    experiment.run(cfg, _WORKDIR.value, plan_only=_PLAN.value, only=tuple(_ONLY.value))
  except W2SError as e:
    sys.exit(f"{e.category} error: {e}")
  except FileNotFoundError as e:  # a data file named by the config
    sys.exit(f"data error: {e}")
  except OSError as e:  # a full disk or a read-only folder while writing stages
    if e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
      sys.exit(f"workdir error: {e.filename or _WORKDIR.value}: {e.strerror}; finished stages are "
               "kept: free space or fix permissions, then rerun the same command to resume")
    raise


def parse_flags(argv):
  """absl flag parsing, with a one-line error naming the key for a bad --config.KEY override."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    from w2s_jax import config as config_lib  # noqa: PLC0415
    unknown = config_lib.override_error(argv)  # a plain sentence for an unknown key
    if unknown is not None:
      sys.exit(f"config error: {unknown}")
    if isinstance(e, flags.Error):
      sys.exit(f"flag error: {e}")
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    sys.exit(f"config error: {msg}")


def run():
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
