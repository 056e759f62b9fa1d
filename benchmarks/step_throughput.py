"""Train-step throughput of one model size on this machine's devices: prints a table.

  python benchmarks/step_throughput.py --sizes gpt2,gpt2-medium --batch 32 --length 1024 \
      --dtype bfloat16 [--remat full] [--attention cudnn] [--steps 20]

Random tokens of the given length (every row full), logconf loss, the default rules over all
local devices (fsdp). Model TFLOP/s counts the model's FLOPs (w2s_jax.dry_run.model_flops), not
the hardware's, so it compares across machines and implementations.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from w2s_jax import config as config_lib, losses, sharding, train  # noqa: E402
from w2s_jax.models import model_config  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import HEADER, throughput_row, time_train_step  # noqa: E402


def measure(size, batch, length, dtype, remat, steps, attention="xla", cpu_tuned=True):
  """(model config, compile + first step s, s per step); `cpu_tuned`: Trainer's."""
  cfg = config_lib.defaults()
  cfg.train.batch_size = batch
  mesh = sharding.make_mesh(1, -1, 1)
  mc = model_config(size, 259)
  tr = train.Trainer(mc, 2, mesh, sharding.DEFAULT_RULES, dtype=dtype, remat=remat,
                     attention=attention, cpu_tuned=cpu_tuned)
  tx, schedule = train.make_optimizer(cfg.train, 1e-5, 10_000)
  step_fn, init_fn, shardings = tr.make_train_step(tx, schedule, losses.get("logconf"),
                                                   cfg.loss.logconf.to_dict(), 10_000)
  rng = np.random.default_rng(0)
  batch_np = {"tokens": rng.integers(0, mc.vocab_size, (1, batch, length)).astype(np.int32),
              "lengths": np.full((1, batch), length, np.int32),
              "targets": np.tile(np.float32([[0.3, 0.7]]), (1, batch, 1))}
  data = jax.device_put(batch_np, shardings)
  first, dt = time_train_step(step_fn, init_fn(tr.init_params(0)), data, steps)
  return mc, first, dt


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--sizes", default="tiny-3,tiny-4")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--remat", default="none")
  p.add_argument("--attention", default="xla", choices=["xla", "cudnn"])
  p.add_argument("--steps", type=int, default=20)
  a = p.parse_args()
  dev = jax.devices()
  print(f"{len(dev)} x {dev[0].device_kind}; batch {a.batch} x {a.length}, {a.dtype}, "
        f"remat {a.remat}, attention {a.attention}")
  print(HEADER)
  for size in a.sizes.split(","):
    mc, first, dt = measure(size, a.batch, a.length, a.dtype, a.remat, a.steps, a.attention)
    print(throughput_row(size, mc, a.batch, a.length, a.remat, first, dt), flush=True)


if __name__ == "__main__":
  main()
