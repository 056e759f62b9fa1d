"""Shared timing and table rows of a train step for the benchmark scripts."""
import time

import jax

from w2s_jax import dry_run
from w2s_jax.models import param_count

HEADER = (f"{'model':>14} {'params':>13} {'ms/step':>9} {'tokens/s':>10} {'model TFLOP/s':>13} "
          f"{'compile+1st s':>13}")


def time_calls(call, wait, steps: int, warmup: int = 2):
  """(seconds of the first call, compile included; seconds per call after `warmup` calls).
  `call()` runs one step; `wait(its result)` blocks until the device has finished it."""
  t0 = time.time()
  wait(call())
  first = time.time() - t0
  for _ in range(warmup):
    out = call()
  wait(out)
  t0 = time.time()
  for _ in range(steps):
    out = call()
  wait(out)
  return first, (time.time() - t0) / steps


def best_seconds(call, repeats: int) -> float:
  """The fastest of `repeats` timed calls, after one untimed (compiling) call; `call()` must
  block until its work is done. For single kernels, where the minimum is the kernel's cost."""
  call()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    call()
    best = min(best, time.perf_counter() - t0)
  return best


def time_train_step(step_fn, state, batch, steps: int, warmup: int = 2):
  """time_calls of a pure `step_fn(state, batch) -> (state, metrics)`, threading the state."""
  carry = [state]

  def call():
    carry[0], metrics = step_fn(carry[0], batch)
    return carry[0], metrics

  return time_calls(call, jax.block_until_ready, steps, warmup)


def throughput_row(size: str, mc, batch: int, length: int, remat: str, first: float,
                   dt: float) -> str:
  """One HEADER row; model TFLOP/s counts the model's FLOPs (dry_run.model_flops)."""
  flops = dry_run.model_flops(mc, batch * length, length, remat)
  return (f"{size:>14} {param_count(mc):>13,} {1e3 * dt:9.1f} {batch * length / dt:10.0f} "
          f"{flops / dt / 1e12:13.1f} {first:13.1f}")
