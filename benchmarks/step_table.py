"""One train-step table for this machine: w2s_jax beside PyTorch eager and torch.compile (the
reference W2SG code's stack) in the same command, with the machine's measured matmul rate as the
roof.

  python benchmarks/step_table.py [--sizes tiny-3,tiny-4,chess-10m,gpt2] [--batch 32]
      [--length 128] [--dtype float32] [--steps 10] [--no_compile] [--threads 1] [--untuned]

Each side is measured by its own script's `measure` (benchmarks/step_throughput.py,
benchmarks/torch_step.py: the same model sizes, random tokens, a head at the last token,
soft-label loss, Adam). The roof is the best of a few fp32 (or bf16) 2048 x 2048 matmuls in JAX.
Model GFLOP/s counts the model's FLOPs (w2s_jax.dry_run.model_flops), so "% roof" is the share
of the matmul rate a step turns into model arithmetic. The machine is noisy: read the ratios of
one run, not absolute times across runs. `--threads 1` runs both sides on one thread (XLA's
single-threaded Eigen and intra-op pool, torch.set_num_threads(1)); pin the process too
(`taskset -c 0`) on a shared machine. `--untuned` adds w2s_jax's step without its CPU tuning
(Trainer(cpu_tuned=False): jax's attention kernel and the scan over layers), the code before
the change, beside the tuned one in the same run ("x untuned": untuned ms / w2s_jax ms).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


import threads  # noqa: E402

threads.single_thread_xla_if_asked()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import step_throughput  # noqa: E402
import timing  # noqa: E402
import torch_step  # noqa: E402
from w2s_jax import dry_run  # noqa: E402
from w2s_jax.models import param_count  # noqa: E402


def matmul_rate(dtype: str, n: int = 2048, repeats: int = 10) -> float:
  """FLOP/s of the best n x n matmul in JAX on the default device."""
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  return 2 * n ** 3 / timing.best_seconds(lambda: f(a).block_until_ready(), repeats)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--sizes", default="tiny-3,tiny-4,chess-10m,gpt2")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--no_compile", action="store_true", help="skip torch.compile")
  p.add_argument("--untuned", action="store_true",
                 help="also time Trainer(cpu_tuned=False), the step before the CPU tuning")
  p.add_argument("--threads", type=int, default=0,
                 help="threads per side (0: each library's default; 1 also sets XLA_FLAGS)")
  a = p.parse_args()
  if a.threads:
    torch_step.torch.set_num_threads(a.threads)
  device = "cuda" if torch_step.torch.cuda.is_available() else "cpu"
  roof = matmul_rate(a.dtype)
  usable, torch_threads = len(os.sched_getaffinity(0)), torch_step.torch.get_num_threads()
  print(f"{jax.devices()[0].device_kind} ({os.cpu_count()} cores, {usable} usable, torch threads "
        f"{torch_threads}); jax {jax.__version__}, torch {torch_step.torch.__version__}; batch "
        f"{a.batch} x {a.length}, {a.dtype}; matmul roof {roof / 1e9:.0f} GFLOP/s")
  head = (f"{'model':>10} {'params':>12} {'w2s_jax ms':>10} {'eager ms':>9} {'compile ms':>10} "
          f"{'x eager':>8} {'x compile':>9} {'GFLOP/s':>8} {'% roof':>7}")
  if a.untuned:
    head += f" {'untuned ms':>10} {'x untuned':>9}"
  print(head)
  print("-" * len(head))
  for size in a.sizes.split(","):
    mc, _, jax_dt = step_throughput.measure(size, a.batch, a.length, a.dtype, "none", a.steps)
    _, _, eager_dt = torch_step.measure(size, a.batch, a.length, a.dtype, a.steps, False, device)
    compile_dt = float("nan") if a.no_compile else torch_step.measure(
        size, a.batch, a.length, a.dtype, a.steps, True, device)[2]
    rate = dry_run.model_flops(mc, a.batch * a.length, a.length, "none") / jax_dt
    row = (f"{size:>10} {param_count(mc):>12,} {1e3 * jax_dt:10.1f} {1e3 * eager_dt:9.1f} "
           f"{1e3 * compile_dt:10.1f} {eager_dt / jax_dt:8.2f} {compile_dt / jax_dt:9.2f} "
           f"{rate / 1e9:8.1f} {100 * rate / roof:6.1f}%")
    if a.untuned:
      old_dt = step_throughput.measure(size, a.batch, a.length, a.dtype, "none", a.steps,
                                       cpu_tuned=False)[2]
      row += f" {1e3 * old_dt:10.1f} {old_dt / jax_dt:9.2f}"
    print(row, flush=True)


if __name__ == "__main__":
  main()
