"""Shared timing of a compiled train step for the benchmark scripts."""
import time

import jax


def time_train_step(step_fn, state, batch, steps: int, warmup: int = 2):
  """(seconds of the first call, compile included; seconds per step after `warmup` steps)."""
  t0 = time.time()
  state, m = step_fn(state, batch)
  jax.block_until_ready(m)
  first = time.time() - t0
  for _ in range(warmup):
    state, m = step_fn(state, batch)
  jax.block_until_ready(m)
  t0 = time.time()
  for _ in range(steps):
    state, m = step_fn(state, batch)
  jax.block_until_ready((state, m))
  return first, (time.time() - t0) / steps
