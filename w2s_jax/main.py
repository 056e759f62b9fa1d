"""Run a weak-to-strong experiment: `python -m w2s_jax.main --config=configs/nlp.py:tiny
--workdir=DIR [--config.a.b=value ...]`."""
import logging
import sys

from absl import app, flags, logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where stages, results and logs are written.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  import jax  # noqa: PLC0415  (after flags: multi-host init must come before device use)

  from w2s_jax import config as config_lib, pipeline  # noqa: PLC0415
  from w2s_jax.data.tasks import DataError  # noqa: PLC0415

  # Libraries (orbax) log every save at INFO: keep theirs at WARNING, ours at INFO.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("w2s_jax").setLevel(logging.INFO)
  cfg = _CONFIG.value
  try:
    config_lib.validate(cfg, jax.device_count())
  except config_lib.ConfigError as e:
    sys.exit(f"config error: {e}")
  import os  # noqa: PLC0415
  os.makedirs(_WORKDIR.value, exist_ok=True)
  with open(os.path.join(_WORKDIR.value, "config.json"), "w") as f:
    f.write(cfg.to_json_best_effort(indent=1))
  try:
    pipeline.run(cfg, _WORKDIR.value)
  except (DataError, FileNotFoundError) as e:
    sys.exit(f"data error: {e}")


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
