"""The matmuls of a train step, one at a time: XLA beside PyTorch on the same shapes. Each linear
layer of a model costs three matmuls per step (forward X.W, input gradient G.W^T, weight
gradient X^T.G, over T = batch x length tokens); this table times each alone, so that a step's
gap to PyTorch can be split into what the dot kernels cost and what the rest of the program
(fusion, layouts, elementwise passes) costs.

  python benchmarks/dot_rates.py [--sizes tiny-3,tiny-4,chess-10m] [--tokens 4096]
      [--repeats 15] [--threads 1]

fp32, best of `repeats`; "x torch" is XLA's rate over torch's (above 1: XLA faster). Pin the
process (`taskset -c 0`) with `--threads 1` on a shared machine.
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import threads  # noqa: E402
import timing  # noqa: E402

threads.single_thread_xla_if_asked()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from w2s_jax.models import SIZES  # noqa: E402

# The three matmuls of X [T, k] . W [k, n] with its output gradient G [T, n]; the same
# expression for both libraries (the transposes are part of what each times).
KINDS = {"fwd": lambda x, w, g: x @ w, "dX": lambda x, w, g: g @ w.T,
         "dW": lambda x, w, g: x.T @ g}


def layer_shapes(size: str) -> dict:
  """(k, n) -> how many of a size's projections have that shape, over all its layers:
  q, k, v and out (d -> d; grouped k/v heads counted as full ones), the MLP's input (two with a
  gated MLP) and output. Embeddings, the head and attention's own matmuls are not counted."""
  s = SIZES[size]
  d, ff, layers = s["d_model"], s["d_ff"], s["n_layers"]
  counts = collections.Counter({(d, d): 4 * layers})
  counts[(d, ff)] += (2 if s["mlp"] in ("swiglu", "geglu") else 1) * layers
  counts[(ff, d)] += layers
  return counts


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--sizes", default="tiny-3,tiny-4,chess-10m")
  p.add_argument("--tokens", type=int, default=4096, help="batch x length")
  p.add_argument("--repeats", type=int, default=15)
  p.add_argument("--threads", type=int, default=0, help="1: one thread each side")
  args = p.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  t = args.tokens
  print(f"{jax.devices()[0].platform} ({os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}); jax {jax.__version__}, torch {torch.__version__}; "
        f"T = {t} tokens, float32; GFLOP/s")
  print(f"{'size':>10} {'k -> n':>12} {'matmul':>6} {'xla':>7} {'torch':>7} {'x torch':>8}")
  rng = np.random.default_rng(0)
  totals = []
  for size in args.sizes.split(","):
    xla_total = torch_total = 0.0
    for (k, n), count in sorted(layer_shapes(size).items()):
      x, w, g = (rng.standard_normal(s, np.float32) for s in ((t, k), (k, n), (t, n)))
      jx, tx_ = [jnp.asarray(v) for v in (x, w, g)], [torch.from_numpy(v) for v in (x, w, g)]
      for name, dot in KINDS.items():
        gflop = 2 * t * k * n / 1e9
        jitted = jax.jit(dot)
        tx = timing.best_seconds(lambda: jitted(*jx).block_until_ready(), args.repeats)
        tt = timing.best_seconds(lambda: dot(*tx_), args.repeats)
        xla_total, torch_total = xla_total + count * tx, torch_total + count * tt
        print(f"{size:>10} {f'{k} -> {n}':>12} {name:>6} {gflop / tx:7.1f} {gflop / tt:7.1f} "
              f"{tt / tx:8.2f}")
    totals.append((size, xla_total, torch_total))
  print("a step's projection matmuls (each shape times its count over the layers):")
  for size, xla_total, torch_total in totals:
    print(f"{size:>10}: xla {xla_total * 1e3:7.1f} ms, torch {torch_total * 1e3:7.1f} ms, "
          f"x torch {torch_total / xla_total:.2f}")


if __name__ == "__main__":
  main()
