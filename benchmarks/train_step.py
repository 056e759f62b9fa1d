"""Train-step time of the tiny config's models on 1 and on 8 fake CPU devices: prints a table.

  python benchmarks/train_step.py [--steps 100] [--devices 1,8]

Each device count runs in its own process (XLA_FLAGS must be set before jax starts); compare the
ratios within one run, since these machines are noisy.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(n_devices: int, steps: int, sizes):
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_devices}"
  sys.path.insert(0, ROOT)
  import importlib.util  # noqa: PLC0415

  from timing import time_train_step  # noqa: PLC0415

  import jax  # noqa: PLC0415
  from w2s_jax import losses, sharding, train  # noqa: PLC0415
  from w2s_jax.data import dataset as data_lib  # noqa: PLC0415
  from w2s_jax.data.tokenizers import get_tokenizer  # noqa: PLC0415
  from w2s_jax.models import model_config, param_count  # noqa: PLC0415

  spec = importlib.util.spec_from_file_location("nlp", os.path.join(ROOT, "configs", "nlp.py"))
  nlp = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(nlp)
  cfg = nlp.get_config("tiny")
  tok = get_tokenizer(cfg.tokenizer)
  splits = data_lib.load_splits(cfg.task, tok, cfg.max_len, cfg.data_seed)
  mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)
  targets = data_lib.one_hot(splits.a.labels, 2)
  rows = []
  for size in sizes:
    mc = model_config(size, tok.vocab_size)
    tr = train.Trainer(mc, 2, mesh, sharding.check_rules(cfg.rules))
    tx, schedule = train.make_optimizer(cfg.train, cfg.train.lr, 10_000)
    step_fn, init_fn, shardings = tr.make_train_step(tx, schedule, losses.get("logconf"),
                                                     cfg.loss.logconf.to_dict(), 10_000)
    batch = data_lib.train_batch(splits.a, targets, 0, batch_size=cfg.train.batch_size, accum=1,
                                 seed=0, buckets=(cfg.train.buckets[-1],))
    batch = jax.device_put(batch, shardings)
    compile_s, dt = time_train_step(step_fn, init_fn(tr.init_params(0)), batch, steps)
    rows.append({"model": size, "params": param_count(mc), "devices": n_devices,
                 "batch": list(batch["tokens"].shape), "ms_per_step": 1e3 * dt,
                 "examples_per_s": cfg.train.batch_size / dt, "first_step_s": compile_s})
  print(json.dumps(rows))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=100)
  p.add_argument("--devices", default="1,8")
  p.add_argument("--sizes", default="tiny-1,tiny-2")
  p.add_argument("--worker", type=int, default=0)
  args = p.parse_args()
  sizes = args.sizes.split(",")
  if args.worker:
    return worker(args.worker, args.steps, sizes)
  rows = []
  for n in map(int, args.devices.split(",")):
    out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--steps",
                          str(args.steps), "--sizes", args.sizes], capture_output=True,
                         text=True, check=True).stdout
    rows += json.loads(out.strip().splitlines()[-1])
  base = {r["model"]: r["ms_per_step"] for r in rows if r["devices"] == rows[0]["devices"]}
  print(f"{'model':>8} {'params':>9} {'devices':>7} {'batch [A,M,L]':>14} {'ms/step':>8} "
        f"{'examples/s':>10} {'vs first':>8} {'compile+1st step s':>18}")
  for r in rows:
    print(f"{r['model']:>8} {r['params']:>9,} {r['devices']:>7} {str(r['batch']):>14} "
          f"{r['ms_per_step']:8.2f} {r['examples_per_s']:10.0f} "
          f"{r['ms_per_step'] / base[r['model']]:7.2f}x {r['first_step_s']:18.2f}")


if __name__ == "__main__":
  main()
