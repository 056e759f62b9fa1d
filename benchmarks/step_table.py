"""One train-step table for this machine: w2s_jax beside PyTorch eager and torch.compile (the
reference W2SG code's stack) in the same command, with the machine's measured matmul rate as the
roof.

  python benchmarks/step_table.py [--sizes tiny-3,tiny-4,chess-10m,gpt2] [--batch 32]
      [--length 128] [--dtype float32] [--steps 10] [--no_compile]

Each side is measured by its own script's `measure` (benchmarks/step_throughput.py,
benchmarks/torch_step.py: the same model sizes, random tokens, a head at the last token,
soft-label loss, Adam). The roof is the best of a few fp32 (or bf16) 2048 x 2048 matmuls in JAX.
Model GFLOP/s counts the model's FLOPs (w2s_jax.dry_run.model_flops), so "% roof" is the share
of the matmul rate a step turns into model arithmetic. The machine is noisy: read the ratios of
one run, not absolute times across runs.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import step_throughput  # noqa: E402
import torch_step  # noqa: E402
from w2s_jax import dry_run  # noqa: E402
from w2s_jax.models import param_count  # noqa: E402


def matmul_rate(dtype: str, n: int = 2048, repeats: int = 10) -> float:
  """FLOP/s of the best n x n matmul in JAX on the default device."""
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--sizes", default="tiny-3,tiny-4,chess-10m,gpt2")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--no_compile", action="store_true", help="skip torch.compile")
  a = p.parse_args()
  device = "cuda" if torch_step.torch.cuda.is_available() else "cpu"
  roof = matmul_rate(a.dtype)
  print(f"{jax.devices()[0].device_kind} ({os.cpu_count()} cores); jax {jax.__version__}, torch "
        f"{torch_step.torch.__version__}; batch {a.batch} x {a.length}, {a.dtype}; matmul roof "
        f"{roof / 1e9:.0f} GFLOP/s")
  head = (f"{'model':>10} {'params':>12} {'w2s_jax ms':>10} {'eager ms':>9} {'compile ms':>10} "
          f"{'x eager':>8} {'x compile':>9} {'GFLOP/s':>8} {'% roof':>7}")
  print(head)
  print("-" * len(head))
  for size in a.sizes.split(","):
    mc, _, jax_dt = step_throughput.measure(size, a.batch, a.length, a.dtype, "none", a.steps)
    _, _, eager_dt = torch_step.measure(size, a.batch, a.length, a.dtype, a.steps, False, device)
    compile_dt = float("nan") if a.no_compile else torch_step.measure(
        size, a.batch, a.length, a.dtype, a.steps, True, device)[2]
    rate = dry_run.model_flops(mc, a.batch * a.length, a.length, "none") / jax_dt
    print(f"{size:>10} {param_count(mc):>12,} {1e3 * jax_dt:10.1f} {1e3 * eager_dt:9.1f} "
          f"{1e3 * compile_dt:10.1f} {eager_dt / jax_dt:8.2f} {compile_dt / jax_dt:9.2f} "
          f"{rate / 1e9:8.1f} {100 * rate / roof:6.1f}%", flush=True)


if __name__ == "__main__":
  main()
