"""Dry-run memory table: the strong model's train step compiled for several sizes and meshes.

  python benchmarks/dry_run_table.py                       # fake CPU devices
  JAX_PLATFORMS=cpu python benchmarks/dry_run_table.py --tpu v5e   # TPU slices (needs libtpu)

Each cell is one `python -m w2s_jax.main --dry_run` (batch max(32, devices) x 1024 tokens, bf16
compute, full remat, fsdp over every device): no parameters are created, nothing trains.
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_SHAPES = {8: "2x4", 16: "4x4", 64: "8x8"}


def cell(size, n, tpu):
  args = [sys.executable, "-m", "w2s_jax.main", "--config=configs/nlp.py:tiny", "--dry_run",
          f"--config.strong.size={size}", f"--config.mesh.fsdp={n}", "--config.max_len=1024",
          "--config.train.buckets=(1024,)", "--config.strong.remat=full",
          "--config.train.dtype=bfloat16", f"--config.train.batch_size={max(32, n)}"]
  args.append(f"--topology={tpu}:{TPU_SHAPES[n]}" if tpu else f"--fake_devices={n}")
  t0 = time.time()
  out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
  if out.returncode:
    return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
  fields = dict(re.findall(r"^(.+?)\s{2,}(.+)$", out.stdout, re.M))
  gib = lambda k: float(fields[k].split()[0])  # noqa: E731
  return {"params": gib("parameters / device"), "opt": gib("optimizer state / device"),
          "temp": gib("temporaries / device"), "peak": gib("peak estimate / device"),
          "tflops": float(fields["model FLOPs / step / device"]) / 1e12,
          "compile_s": time.time() - t0}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--sizes", default="gpt2-xl,qwen2.5-7b,llama-3-8b")
  p.add_argument("--devices", default="8,16,64")
  p.add_argument("--tpu", default="", help="TPU generation for topology compiles, e.g. v5e")
  a = p.parse_args()
  print(f"{'model':>11} {'devices':>12} {'params GiB':>10} {'opt GiB':>8} {'temp GiB':>8} "
        f"{'peak GiB':>8} {'TFLOP/step/dev':>14} {'wall s':>7}")
  for size in a.sizes.split(","):
    for n in map(int, a.devices.split(",")):
      r = cell(size, n, a.tpu)
      where = f"{a.tpu}:{TPU_SHAPES[n]}" if a.tpu else f"cpu x{n}"
      if "error" in r:
        print(f"{size:>11} {where:>12}  error: {r['error']}")
        continue
      print(f"{size:>11} {where:>12} {r['params']:10.3f} {r['opt']:8.3f} {r['temp']:8.3f} "
            f"{r['peak']:8.3f} {r['tflops']:14.2f} {r['compile_s']:7.1f}", flush=True)


if __name__ == "__main__":
  main()
