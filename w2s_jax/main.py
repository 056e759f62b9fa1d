"""Run a weak-to-strong experiment:

  python -m w2s_jax.main --config=configs/nlp.py:tiny --workdir=DIR [--config.a.b=value ...]

Several processes (one per host): add --coordinator_address=HOST:PORT --num_processes=N
--process_id=I (or the W2S_* environment variables); on a TPU VM pod or under SLURM they are found
automatically. --dry_run compiles the strong model's train step and prints its memory and FLOPs.
"""
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
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Compile the strong model's train step for the "
                             "config's mesh; print memory per device and FLOPs; do not train.")
_TOPOLOGY = flags.DEFINE_string("topology", "", "With --dry_run: compile for a TPU slice "
                                "described on this CPU, e.g. v5e:4x4 (needs libtpu).")
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
  import jax  # noqa: PLC0415

  from w2s_jax import checkpoint, config as config_lib, pipeline, train  # noqa: PLC0415
  from w2s_jax.data.tasks import DataError  # noqa: PLC0415

  if not distributed.is_main():
    logging.getLogger("w2s_jax").setLevel(logging.WARNING)
  cfg = _CONFIG.value
  if _DRY_RUN.value:
    from w2s_jax import dry_run  # noqa: PLC0415
    try:
      print(dry_run.report(cfg, topology=_TOPOLOGY.value), flush=True)
    except dry_run.DoesNotFit as e:
      sys.exit(f"does not fit: {e}")
    except config_lib.ConfigError as e:
      sys.exit(f"config error: {e}")
    except ValueError as e:
      sys.exit(f"dry run error: {e}")
    return
  if not _WORKDIR.value:
    sys.exit("flag error: --workdir is required (except with --dry_run)")
  try:
    config_lib.validate(cfg, jax.device_count())
  except config_lib.ConfigError as e:
    sys.exit(f"config error: {e}")
  if distributed.is_main():
    from etils import epath  # noqa: PLC0415  (local folders and gs:// buckets alike)
    workdir = epath.Path(_WORKDIR.value)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(cfg.to_json_best_effort(indent=1))
  try:
    if cfg.experiment == "chess":
      from w2s_jax.chess import ladder  # noqa: PLC0415
      ladder.run(cfg, _WORKDIR.value)
    else:
      pipeline.run(cfg, _WORKDIR.value)
  except (DataError, FileNotFoundError) as e:
    sys.exit(f"data error: {e}")
  except config_lib.ConfigError as e:  # found once the data is read (e.g. too few puzzles)
    sys.exit(f"config error: {e}")
  except checkpoint.Preempted as e:
    sys.exit(f"preempted: {e}")
  except train.NonFiniteLoss as e:
    sys.exit(f"training diverged: {e}")


def parse_flags(argv):
  """absl flag parsing, with a one-line error naming the key for a bad --config.KEY override."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"flag error: {e}")
  except (KeyError, AttributeError, TypeError, ValueError) as e:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    sys.exit(f"config error: {msg}")


def run():
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
