"""K seeds in one program: a jax.vmap-ed train step over stacked states against K sequential
runs of the same step, for a small model and for a linear probe; prints a table.

  python benchmarks/vmap_seeds.py [--size tiny-2] [--seeds 3,5] [--steps 20] [--batch 32]
      [--length 64] [--probe_dims 64,576] [--probe_rows 4000] [--probe_steps 500]
      [--probe_chunk 10] [--threads 1]

Model: benchmarks/step_throughput.py's step (Trainer.make_train_step: logconf, Adam, one
program), seed s starting from `init_params(s)` and its own random batches; vmapped: the same
jitted step under jax.vmap over the stacked states and batches, as one program. Probe:
loop._probe_program's scanned program, `--probe_chunk` steps per dispatch and the metrics
fetched after each, as fit_probe runs it (chunks of train.log_every), seed s reading its own
batch order (data.batch_indices); vmapped: the same program under jax.vmap. Both columns count
the same number of steps per seed, compiles excluded (timed apart, "compile s"); "ratio" is
sequential / vmapped. Each row also checks that the vmapped final parameters equal the
sequential ones (max abs difference).
"fit_probes" rows: the same probes through loop.fit_probes, the framework's path (its chunks
of train.log_every steps, metrics recorded on the host), batched against one call per probe.
Model rows also time the same programs two seeds at a time in Python threads ("2 threads s",
checked equal bit for bit): what running stages concurrently would gain.
Not wired into the pipeline: a measurement only. `--threads 1`: XLA single-threaded (pin the
process too, `taskset -c 0`, on a shared machine).
"""
import argparse
import concurrent.futures
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


import threads  # noqa: E402

threads.single_thread_xla_if_asked()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from w2s_jax import config as config_lib, loop, losses, sharding, train  # noqa: E402
from w2s_jax.data import dataset as data_lib  # noqa: E402
from w2s_jax.models import model_config  # noqa: E402


def _stack(trees):
  return jax.tree.map(lambda *t: jnp.stack(t), *trees)


def _max_diff(a, b) -> float:
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a),
                                                            jax.tree.leaves(b)))


def _best(prepare, run, rounds: int) -> float:
  """Best wall seconds of `run(prepare())` (which blocks) over `rounds` calls; `prepare` (fresh
  initial states: the steps donate them) is not timed."""
  best = float("inf")
  for _ in range(rounds):
    start = jax.block_until_ready(prepare())
    t0 = time.perf_counter()
    run(start)
    best = min(best, time.perf_counter() - t0)
  return best


def model_row(size, k, steps, batch, length, rounds):
  """(sequential s, vmapped s, compile s of each, max |param difference|) for K seeds."""
  cfg = config_lib.defaults()
  cfg.train.batch_size = batch
  mc = model_config(size, 259)
  tr = train.Trainer(mc, 2, sharding.make_mesh(1, -1, 1), sharding.DEFAULT_RULES)
  tx, schedule = train.make_optimizer(cfg.train, 1e-3, 10_000)
  step_fn, init_fn, shardings = tr.make_train_step(tx, schedule, losses.get("logconf"),
                                                   cfg.loss.logconf.to_dict(), 10_000)
  rng = np.random.default_rng(0)
  batches = []
  for _ in range(k):  # each seed its own rows (random tokens, ragged lengths, soft labels)
    p = rng.uniform(size=(1, batch))
    batches.append(jax.device_put({
        "tokens": rng.integers(0, mc.vocab_size, (1, batch, length)).astype(np.int32),
        "lengths": rng.integers(length // 2, length + 1, (1, batch)).astype(np.int32),
        "targets": np.stack([p, 1 - p], -1).astype(np.float32)}, shardings))
  # The same jitted step, vmapped: states and batches stacked on a leading seeds axis.
  vstep = jax.jit(jax.vmap(step_fn), donate_argnums=(0,))
  vbatch = _stack(batches)

  params = [tr.init_params(s) for s in range(k)]  # seed s: init_params(s)
  fresh = lambda: [init_fn(jax.tree.map(jnp.copy, p)) for p in params]  # noqa: E731

  def one(s, state):  # seed s's steps
    for _ in range(steps):
      state, _ = step_fn(state, batches[s])
    return jax.block_until_ready(state)

  def sequential(states):
    return [one(s, state) for s, state in enumerate(states)]

  def vmapped(states):
    state = _stack(states)
    for _ in range(steps):
      state, _ = vstep(state, vbatch)
    return jax.block_until_ready(state)

  def threads(states):  # the same programs, two seeds at a time (Python threads)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      return list(pool.map(one, range(k), states))

  row = _compare(fresh, sequential, vmapped, lambda: step_fn(fresh()[0], batches[0]),
                 lambda: vstep(_stack(fresh()), vbatch), k, rounds)
  seq_states, two = sequential(fresh()), threads(fresh())
  assert all(_max_diff(a["params"], b["params"]) == 0 for a, b in zip(seq_states, two))
  return row + (_best(fresh, threads, rounds),)


def probe_row(d, k, steps, rows, batch, rounds, chunk):
  """The same for a linear probe on fixed features [rows, d], 2 classes, `chunk` steps per
  dispatch with the metrics fetched after each (fit_probe's loop: chunk = train.log_every)."""
  cfg = config_lib.defaults()
  tcfg = cfg.train
  tcfg.batch_size = batch
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(rows, d)).astype(np.float32))
  p = rng.uniform(size=rows)
  y = jnp.asarray(np.stack([p, 1 - p], -1).astype(np.float32))
  hp = loop.resolve_hp(cfg.loss.logconf.to_dict(), steps)
  run, init = loop._probe_program((x.shape, y.shape), tcfg, "logconf", hp, 1e-3, steps)
  idx = [jnp.asarray(np.stack([data_lib.batch_indices(rows, j, batch, s) for j in range(steps)]))
         for s in range(k)]
  start = lambda: init({"cls_head": jnp.zeros((d, 2), jnp.float32)})  # noqa: E731 (fit_probe's)
  vrun = jax.jit(jax.vmap(run, in_axes=(0, None, None, 0)))
  vidx = jnp.stack(idx)

  fresh = lambda: [start() for _ in range(k)]  # noqa: E731

  def chunks(fn, state, ids):
    for i in range(0, steps, chunk):
      state, m = fn(state, x, y, ids[..., i:i + chunk, :])
      jax.device_get(m)  # fit_probe records every chunk's metrics on the host
    return state

  def sequential(states):
    return jax.block_until_ready([chunks(run, states[s], idx[s]) for s in range(k)])

  def vmapped(states):
    return jax.block_until_ready(chunks(vrun, _stack(states), vidx))

  return _compare(fresh, sequential, vmapped, lambda: run(start(), x, y, idx[0][:chunk]),
                  lambda: vrun(_stack(fresh()), x, y, vidx[:, :chunk]), k, rounds)


def fit_probes_row(d, k, steps, rows, batch, rounds):
  """The framework's path: loop.fit_probes over K probes as one program against one call per
  probe (fit_probe), logging and recording included; compiles timed apart."""
  cfg = config_lib.defaults()
  cfg.train.batch_size = batch
  rng = np.random.default_rng(0)
  probes = []
  for s in range(k):
    p = rng.uniform(size=rows)
    probes.append(loop.Probe(rng.normal(size=(rows, d)).astype(np.float32),
                             np.stack([p, 1 - p], -1).astype(np.float32), s))
  kw = dict(loss_name="logconf", loss_hp=loop.resolve_hp(cfg.loss.logconf.to_dict(), steps),
            tcfg=cfg.train, lr=1e-3, steps=steps)
  loop.MIN_BATCHED_STEPS = 0  # batch however few the steps: the rule is what is measured
  sequential = lambda: [loop.fit_probes([p], **kw)[0] for p in probes]  # noqa: E731
  batched = lambda: loop.fit_probes(probes, **kw)  # noqa: E731
  compile_s = []
  for first in (lambda: loop.fit_probes(probes[:1], **kw), batched):
    t0 = time.perf_counter()
    first()
    compile_s.append(time.perf_counter() - t0)
  diff = max(_max_diff(a.params, b.params) for a, b in zip(sequential(), batched()))
  return (_best(lambda: None, lambda _: sequential(), rounds),
          _best(lambda: None, lambda _: batched(), rounds), *compile_s, diff)


def _compare(fresh, sequential, vmapped, first_sequential, first_vmapped, k, rounds):
  """(sequential s, vmapped s, compile s of each, max |param difference|): the compiles (and
  a first step) timed apart from the runs."""
  compile_s = []
  for first in (first_sequential, first_vmapped):
    t0 = time.perf_counter()
    jax.block_until_ready(first())
    compile_s.append(time.perf_counter() - t0)
  seq_states, vmap_state = sequential(fresh()), vmapped(fresh())
  diff = max(_max_diff(seq_states[s]["params"], jax.tree.map(lambda t: t[s], vmap_state["params"]))
             for s in range(k))
  return (_best(fresh, sequential, rounds), _best(fresh, vmapped, rounds), *compile_s, diff)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--size", default="tiny-2")
  p.add_argument("--seeds", default="3,5")
  p.add_argument("--steps", type=int, default=20, help="train steps per seed (model)")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--length", type=int, default=64)
  p.add_argument("--probe_dims", default="64,576", help="feature widths of the probe rows")
  p.add_argument("--probe_rows", type=int, default=4000)
  p.add_argument("--probe_steps", type=int, default=500)
  p.add_argument("--probe_chunk", type=int, default=10,
                 help="probe steps per dispatch (fit_probe: train.log_every, default 10)")
  p.add_argument("--rounds", type=int, default=3, help="timed repeats; the best is shown")
  p.add_argument("--threads", type=int, default=0, help="1: XLA single-threaded (XLA_FLAGS)")
  a = p.parse_args()
  print(f"{jax.devices()[0].device_kind} ({len(os.sched_getaffinity(0))} usable cores); jax "
        f"{jax.__version__}; model {a.size} batch {a.batch} x {a.length}, {a.steps} steps/seed; "
        f"probe {a.probe_rows} rows, batch {a.batch}, {a.probe_steps} steps/seed in dispatches of "
        f"{a.probe_chunk}; best of "
        f"{a.rounds}")
  head = (f"{'what':>16} {'K':>2} {'sequential s':>12} {'vmapped s':>10} {'ratio':>6} "
          f"{'compile s (seq/vmap)':>20} {'max |diff|':>10} {'2 threads s':>11} {'ratio':>6}")
  print(head)
  print("-" * len(head))
  rows = [(f"{a.size} train", lambda k: model_row(a.size, k, a.steps, a.batch, a.length,
                                                  a.rounds))]
  rows += [(f"probe d={d}", lambda k, d=int(d): probe_row(d, k, a.probe_steps, a.probe_rows,
                                                          a.batch, a.rounds, a.probe_chunk))
           for d in a.probe_dims.split(",")]
  rows += [(f"fit_probes d={d}", lambda k, d=int(d): fit_probes_row(
      d, k, a.probe_steps, a.probe_rows, a.batch, a.rounds)) for d in a.probe_dims.split(",")]
  for what, row in rows:
    for k in (int(s) for s in a.seeds.split(",")):
      seq, vm, c_seq, c_vm, diff, *two = row(k)
      threads = f" {two[0]:11.3f} {seq / two[0]:6.2f}" if two else f" {'-':>11} {'-':>6}"
      print(f"{what:>16} {k:>2} {seq:12.3f} {vm:10.3f} {seq / vm:6.2f} "
            f"{f'{c_seq:.1f} / {c_vm:.1f}':>20} {diff:10.1e}{threads}", flush=True)


if __name__ == "__main__":
  main()
