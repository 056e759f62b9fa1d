"""Training loops: `fit` (a Trainer's compiled step over batches, with checkpoints, evaluations
and early stopping) and `fit_probe` (a linear head on fixed features), sharing their schedule
length, logging and non-finite checks.
"""
import json
import logging
import math
import os
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath

from w2s_jax import checkpoint, files, losses, sharding
from w2s_jax.data import dataset as data_lib
from w2s_jax.errors import NonFiniteLoss
from w2s_jax.models import param_count
from w2s_jax.train import Trainer, make_optimizer, schedule_values, unit_optimizer

log = logging.getLogger(__name__)


class FitResult(NamedTuple):
  params: dict  # the last step's, or with a selection metric the best evaluated step's
  history: list  # one metrics dict per logged step
  steps: int
  seconds: float
  resumed_from: int  # the checkpoint step training resumed from (0: a fresh start)
  evals: list = []  # one {"step", metrics...} per evaluation (Evaluation)
  best_step: int = -1  # the step whose parameters `params` are (-1: the last)
  speed: dict = {}  # compile (+ first step) seconds apart from the steady state's rates


class Evaluation(NamedTuple):
  """Evaluate the parameters every `every` steps and after the last. `metric`: choose the
  parameters of the best evaluation by evaluate(params)[metric] (largest, or smallest with
  mode "min"); "" keeps the last parameters (evaluations for the curves only)."""
  evaluate: Callable  # params -> {name: float}
  every: int
  metric: str = ""
  mode: str = "max"

  def better(self, value: float, best: float) -> bool:
    if not np.isfinite(value):
      return False
    return not np.isfinite(best) or (value > best if self.mode == "max" else value < best)


def schedule_length(n: int, tcfg, label: str, steps: int = 0) -> int:
  """Optimizer steps of a stage: `steps`, or tcfg.epochs passes over n rows."""
  per_epoch = data_lib.steps_per_epoch(n, tcfg.batch_size)
  if per_epoch == 0:
    raise ValueError(f"{label}: {n} examples is less than one batch of "
                     f"config.train.batch_size={tcfg.batch_size}")
  return steps or max(1, int(math.ceil(tcfg.epochs * per_epoch)))


def resolve_hp(loss_hp: dict, total: int) -> dict:
  """Loss hyper-parameters given in steps, as the fractions of training the losses read
  (logconf's warmup_steps > 0 -> warmup_frac)."""
  hp = dict(loss_hp)
  if hp.pop("warmup_steps", 0) and loss_hp["warmup_steps"] > 0:
    hp["warmup_frac"] = min(1.0, loss_hp["warmup_steps"] / total)
  return hp


class Recorder:
  """Per-step metrics of a training loop: non-finite check on every step, and every log_every
  steps, or more often where that would leave a curve of fewer than CURVE_POINTS points (and
  the last step), a history entry with examples/s and a line for the writer."""
  CURVE_POINTS = 20

  def __init__(self, tcfg, total: int, label: str, writer=None):
    self.tcfg, self.total, self.label, self.writer = tcfg, total, label, writer
    self.every = max(1, min(tcfg.log_every, total // self.CURVE_POINTS))
    self.history, self.t_log, self.n_log = [], time.time(), 0

  def record(self, item) -> None:
    step, metrics = item
    m = {k: float(v) for k, v in jax.device_get(metrics).items()}
    self.n_log += self.tcfg.batch_size
    if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
      self._non_finite(step, m)
    if step % self.every == 0 or step == self.total - 1:
      self._log(step, m)

  def record_chunk(self, first: int, metrics: dict) -> None:
    """Steps first, first + 1, ... of one program (host arrays [m] per metric), as `record`
    of each: only the log steps cost Python work (a probe's thousands of steps)."""
    finite = np.isfinite(metrics["loss"]) & np.isfinite(metrics["grad_norm"])
    stop = len(finite) if finite.all() else int(np.argmin(finite))  # the first bad step
    counted = 0
    for j in range(stop):
      if (first + j) % self.every == 0 or first + j == self.total - 1:
        self.n_log += (j + 1 - counted) * self.tcfg.batch_size
        counted = j + 1
        self._log(first + j, {k: float(v[j]) for k, v in metrics.items()})
    self.n_log += (stop - counted) * self.tcfg.batch_size
    if stop < len(finite):
      self._non_finite(first + stop, {k: float(v[stop]) for k, v in metrics.items()})

  def _log(self, step: int, m: dict) -> None:
    now = time.time()
    m.update(step=step, examples_per_s=self.n_log / max(now - self.t_log, 1e-9))
    self.history.append(m)
    self.t_log, self.n_log = now, 0
    if self.writer:
      self.writer.write(self.label, m, self.total)

  def _non_finite(self, step: int, m: dict):
    raise NonFiniteLoss(f"{self.label}: non-finite loss {m['loss']} (gradient norm "
                        f"{m['grad_norm']}) at step {step}; the last good checkpoint is kept")


OBJECTIVES = {  # objective -> (targets' rank, integer targets)
    "soft": (2, False),  # class (or preference) probabilities [N, C]: the weak labels
    "hard": (1, True),  # class ids [N] (chess moves: ids over a vocabulary)
    "answer": (2, True),  # answer token ids [N, A], -1 padded: next-token loss on the answers
}


def train_program(trainer: Trainer, tcfg, *, objective: str, loss_name: str, loss_hp: dict,
                  seed: int = 0, legal: bool = False):
  """(step_fn, init_fn, batch_shardings): the train program `fit` runs for these choices, the
  one the dry run compiles. Stages of one model with the same optimizer and loss share it (a
  ceiling and a student, two seeds, other learning rates and lengths: those are run-time
  values, schedule_values), built and compiled once per process. `loss_hp`: resolved
  (resolve_hp)."""
  accum = tcfg.batch_size // (tcfg.micro_batch_size or tcfg.batch_size)
  micro = tcfg.batch_size // accum
  opt_keys = ("optimizer", "b1", "b2", "eps", "weight_decay", "schedule", "grad_clip")
  program = (objective, loss_name, json.dumps(loss_hp, sort_keys=True), accum, micro,
             tuple(tcfg[k] for k in opt_keys), seed if trainer.lora else None, legal)
  if program not in trainer.programs:
    trainer.programs[program] = trainer.make_train_step(
        unit_optimizer(tcfg), tcfg.schedule, losses.get(loss_name), loss_hp, None, seed,
        targets=objective, legal=legal)
  return trainer.programs[program]


def fit(trainer: Trainer, params: dict, ds: data_lib.Dataset, targets: np.ndarray, *,
        objective: str, loss_name: str, loss_hp: dict, tcfg, lr: float, seed: int, writer=None,
        label: str = "", ckpt_dir: str = "", stop_after: int = 0, steps: int = 0,
        evaluation: Evaluation | None = None, profile_dir: str = "",
        legal: np.ndarray | None = None) -> FitResult:
  """Train `params` (consumed) on (ds, targets) for `tcfg.epochs` (or exactly `steps`).
  `objective` says what the targets are (OBJECTIVES): soft [N, C] probabilities, hard class ids
  [N], or answer token ids [N, A] (the last tokens of each row of `ds`; -1 padded) for
  next-token loss on the answers only.

  With `ckpt_dir`, the state is saved every `tcfg.checkpoint_every` steps and on preemption,
  and a run finding a checkpoint there resumes from it (on whatever mesh it has now).
  `stop_after` > 0 stops after that many steps as if preempted (tests).
  `evaluation`: periodic evaluations and, with a metric, the best step's parameters (kept in
  the checkpoints too, so a resumed run selects exactly as an uninterrupted one).
  `profile_dir`: where the steps tcfg.profile_steps = (first, last) are traced (jax.profiler).
  `legal`: [N, ceil(C/8)] uint8 bit sets (np.packbits(..., bitorder="little")) of each row's
  legal classes: the loss becomes a softmax over those only (chess: the position's legal moves).
  """
  accum = tcfg.batch_size // (tcfg.micro_batch_size or tcfg.batch_size)
  micro = tcfg.batch_size // accum
  total = schedule_length(len(ds), tcfg, label, steps)
  loss_hp = resolve_hp(loss_hp, total)
  rank, integer = OBJECTIVES[objective]
  if targets.ndim != rank or bool(np.issubdtype(targets.dtype, np.integer)) != integer:
    raise ValueError(f"{label}: objective {objective!r} takes {'integer' if integer else 'float'}"
                     f" targets of rank {rank}, got {targets.dtype} {targets.shape}")
  if legal is not None and legal.shape != (len(ds), (trainer.classes + 7) // 8):
    raise ValueError(f"{label}: legal bit sets {legal.shape}, want ({len(ds)}, "
                     f"{(trainer.classes + 7) // 8})")
  step_fn, init_fn, batch_shardings = train_program(
      trainer, tcfg, objective=objective, loss_name=loss_name, loss_hp=loss_hp, seed=seed,
      legal=legal is not None)
  values = jax.device_put(schedule_values(tcfg, lr, total), trainer.replicated)
  rows = sharding.local_rows(batch_shardings["lengths"], (accum, micro), 1)
  state = init_fn(params)
  select = evaluation is not None and bool(evaluation.metric)
  # What a checkpoint holds: the state, and with a selection metric the best parameters so far.
  tree = lambda st, best: {"state": st, "best": best} if select else st  # noqa: E731
  scalar = lambda v, dtype: jax.device_put(np.asarray(v, dtype), trainer.replicated)  # noqa: E731
  best = {"params": jax.tree.map(jnp.copy, trainer.effective(state["params"], state["frozen"])),
          "value": scalar(np.nan, np.float32), "step": scalar(-1, np.int32)} if select else None
  evals = []
  ckpt = checkpoint.TrainCheckpoints(ckpt_dir, tcfg.checkpoint_every, tcfg.keep_checkpoints) \
      if ckpt_dir else None
  start = (ckpt.latest_step() or 0) if ckpt else 0
  if start:
    restored = ckpt.restore(start, tree(state, best))
    state, best = (restored["state"], restored["best"]) if select else (restored, None)
    evals = [e for e in _read_evals(ckpt_dir) if e["step"] <= start]
    log.info("[%s] resumed from the checkpoint of step %d", label, start)

  eval_seconds = [0.0]

  def evaluate(done):
    nonlocal best
    t_eval = time.time()
    current = trainer.effective(state["params"], state["frozen"])
    m = {k: float(v) for k, v in evaluation.evaluate(current).items()}
    evals.append({"step": done, **m})
    if writer:
      writer.write_eval(label, done, m)
    if select and evaluation.better(m[evaluation.metric], float(best["value"])):
      best = {"params": jax.tree.map(jnp.copy, current),
              "value": scalar(m[evaluation.metric], np.float32), "step": scalar(done, np.int32)}
    log.info("[%s] eval at step %d: %s", label, done,
             ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
    eval_seconds[0] += time.time() - t_eval
  if ckpt:
    checkpoint.watch_sigterm()
  rec, pending, t0 = Recorder(tcfg, total, label, writer), None, time.time()
  record = rec.record
  try:
    first, last = tuple(tcfg.get("profile_steps", (0, 0)))
    tracing = False
    for step in range(start, total):
      if profile_dir and last > 0 and step == max(first, start) and step <= last:
        jax.profiler.start_trace(profile_dir)
        tracing = True
      local = data_lib.train_batch(ds, targets, step, batch_size=tcfg.batch_size, accum=accum,
                                   seed=seed, buckets=tcfg.buckets, rows=rows)
      if legal is not None:  # the rows train_batch took
        idx = data_lib.batch_indices(len(ds), step, tcfg.batch_size, seed).reshape(accum, micro)
        local["legal"] = legal[idx[:, rows]]
      batch = {k: jax.make_array_from_process_local_data(
          batch_shardings[k], v, (accum, micro) + v.shape[2:]) for k, v in local.items()}
      state, metrics = step_fn(state, batch, values)
      if step == start:  # compilation and the first step, timed apart from the steady state
        jax.block_until_ready(metrics)
        t_first, tokens = time.time(), 0
      else:
        tokens += tcfg.batch_size * local["tokens"].shape[2] * (2 if trainer.pairwise else 1)
      if pending is not None:  # the previous step's metrics: the host never waits on this one
        record(pending)
      pending = (step, metrics)
      done = step + 1
      if tracing and (step >= last or done == total):
        jax.block_until_ready(metrics)
        jax.profiler.stop_trace()
        tracing = False
        log.info("[%s] steps %d-%d traced into %s", label, max(first, start), step, profile_dir)
      if evaluation is not None and (done % evaluation.every == 0 or done == total):
        evaluate(done)
      if ckpt and done < total:
        save, preempted = ckpt.due(done)
        preempted = preempted or done == stop_after
        if save or preempted:
          record(pending)  # never save a state whose step was not finite
          pending = None
          ckpt.save(done, tree(state, best))
          if evaluation is not None:
            _write_evals(ckpt_dir, evals)
          if preempted:
            raise checkpoint.Preempted(f"{label}: stopped at step {done} of {total} with a "
                                       "checkpoint; rerun the same command to resume")
    if pending is not None:
      record(pending)
  finally:
    if ckpt:
      ckpt.close()
  speed = steady_speed(trainer, total - start, t0, t_first, tokens, tcfg.batch_size,
                       eval_seconds[0]) if total > start else {}
  if speed:
    log.info("[%s] compile + first step %.1fs; then %.3f s/step, %.0f examples/s, %.0f tokens/s"
             ", %.2f model GFLOP/s%s", label, speed["first_step_seconds"],
             speed["step_seconds"], speed["examples_per_s"], speed["tokens_per_s"],
             speed["model_flops_per_s"] / 1e9, f" ({100 * speed['model_flops_utilization']:.1f}% "
             "of W2S_PEAK_FLOPS)" if "model_flops_utilization" in speed else "")
  if select and int(best["step"]) >= 0:
    params, best_step = best["params"], int(best["step"])
    log.info("[%s] kept step %d of %d (best %s %.4f)", label, best_step, total,
             evaluation.metric, float(best["value"]))
  else:
    params, best_step = trainer.effective(state["params"], state["frozen"]), -1
  return FitResult(jax.block_until_ready(params), rec.history, total, time.time() - t0, start,
                   evals, best_step, speed)


def steady_speed(trainer: Trainer, steps: int, t0: float, t_first: float, tokens: int,
                 batch_size: int, excluded: float = 0.0) -> dict:
  """Rates of the steps after the first (which includes compilation), evaluations left out
  (`excluded` seconds); model FLOPs as 6 x parameters x tokens (forward and
  backward of the dense layers)."""
  seconds = max(time.time() - t_first - excluded, 1e-9)
  rest = steps - 1
  out = {"first_step_seconds": t_first - t0, "step_seconds": seconds / max(rest, 1),
         "examples_per_s": rest * batch_size / seconds, "tokens_per_s": tokens / seconds,
         "model_flops_per_s": 6 * param_count(trainer.model_cfg) * tokens / seconds}
  peak = float(os.environ.get("W2S_PEAK_FLOPS", 0))  # the devices' peak FLOP/s, all together
  if peak > 0:
    out["model_flops_utilization"] = out["model_flops_per_s"] / peak
  return out


def _write_evals(ckpt_dir: str, evals: list) -> None:
  files.atomic_write_text(epath.Path(ckpt_dir) / "evals.json", json.dumps(evals))


def _read_evals(ckpt_dir: str) -> list:
  path = epath.Path(ckpt_dir) / "evals.json"
  return json.loads(path.read_text()) if path.exists() else []


_PROBES = {}  # probe programs by what they bake in (shapes, loss, optimizer, lr, length)


def _probe_program(shapes, tcfg, loss_name: str, loss_hp: dict, lr: float, total: int):
  """(run, init): `run(state, x, y, idx [k, B])` trains k steps as one scanned program on
  device-resident features, returning the state and the k steps' metrics. Shared by every probe
  stage of the same shapes, loss and schedule (a depth ladder's hundreds of probes compile it
  once), and one dispatch per k steps instead of one per step."""
  key = (shapes, tcfg.batch_size, tcfg.to_json(), loss_name, json.dumps(loss_hp, sort_keys=True),
         lr, total)
  if key not in _PROBES:
    tx, schedule = make_optimizer(tcfg, lr, total)
    loss = losses.get(loss_name)

    def step(state, x, y):
      def loss_fn(p):
        logits = x @ p["cls_head"]
        return loss(logits, y, state["step"].astype(jnp.float32) / total, **loss_hp), logits
      (value, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
      updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
      new = {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
             "opt_state": opt_state}
      return new, {"loss": value, "lr": schedule(state["step"]),
                   "grad_norm": optax.tree.norm(grads),
                   "accuracy": jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(y, -1))}

    @jax.jit
    def run(state, x, y, idx):
      return jax.lax.scan(lambda st, i: step(st, x[i], y[i]), state, idx)

    def init(params):
      return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    _PROBES[key] = (run, init)
  return _PROBES[key]


class Probe(NamedTuple):
  """One probe stage's inputs to `fit_probes`: its features [N, d], targets [N, C], seed (its
  batch order), metric writer, log label and periodic evaluation (or None)."""
  features: np.ndarray
  targets: np.ndarray
  seed: int
  writer: object = None
  label: str = ""
  evaluation: Evaluation | None = None


def fit_probe(features: np.ndarray, targets: np.ndarray, *, loss_name: str, loss_hp: dict, tcfg,
              lr: float, seed: int, writer=None, label: str = "", steps: int = 0,
              evaluation: Evaluation | None = None) -> FitResult:
  """A linear probe: only the classification head trains, on fixed features [N, d] (computed
  once by `Trainer.predict(..., what="features")`), with the same losses, optimizer, schedule
  and batch order as full fine-tuning. Returns {"cls_head": [d, C]}."""
  return fit_probes([Probe(features, targets, seed, writer, label, evaluation)],
                    loss_name=loss_name, loss_hp=loss_hp, tcfg=tcfg, lr=lr, steps=steps)[0]


# Below this many probe steps in all, K probes run one by one: the vmapped program's compile
# (about a second here) costs more than it saves (BUILD_NOTES, "Seeds in one program").
MIN_BATCHED_STEPS = 1000


def fit_probes(probes: list, *, loss_name: str, loss_hp: dict, tcfg, lr: float,
               steps: int = 0) -> list:
  """Probes that differ only by seed, rows and targets (equal shapes, loss and schedule) as one
  program over a leading seeds axis (jax.vmap of fit_probe's scanned program): one dispatch per
  chunk of steps for all of them (probes of other shapes: one program per shape). Each keeps its own batch order, evaluations, best step and
  log; the results equal separate fit_probe calls' (tests/test_vmap_seeds.py). One probe runs
  the program as is."""
  shapes = [(p.features.shape, p.targets.shape) for p in probes]
  if len(set(shapes)) > 1:  # rows a label filter dropped: one program per shape
    out = [None] * len(probes)
    for shape in dict.fromkeys(shapes):
      where = [i for i, s in enumerate(shapes) if s == shape]
      for i, r in zip(where, fit_probes([probes[i] for i in where], loss_name=loss_name,
                                        loss_hp=loss_hp, tcfg=tcfg, lr=lr, steps=steps)):
        out[i] = r
    return out
  (n, d), (_, c) = shapes[0]
  k, label = len(probes), probes[0].label
  total = schedule_length(n, tcfg, label, steps)
  if 1 < k and k * total < MIN_BATCHED_STEPS:  # compiling the batched program costs more
    return [fit_probes([p], loss_name=loss_name, loss_hp=loss_hp, tcfg=tcfg, lr=lr,
                       steps=steps)[0] for p in probes]
  loss_hp = resolve_hp(loss_hp, total)
  run, init = _probe_program(((n, d), (n, c)), tcfg, loss_name, loss_hp, lr, total)
  if k > 1:
    run = _vmapped(run)
  x = jnp.asarray(np.stack([p.features for p in probes]) if k > 1 else probes[0].features)
  y = jnp.asarray(np.stack([p.targets.astype(np.float32) for p in probes]) if k > 1
                  else probes[0].targets.astype(np.float32))
  state = init({"cls_head": jnp.zeros((d, c), jnp.float32)})
  if k > 1:
    state = jax.tree.map(lambda a: jnp.stack([a] * k), state)
  recs = [Recorder(tcfg, total, p.label, p.writer) for p in probes]
  t0 = time.time()
  evals, best = [[] for _ in probes], [(None, float("nan"), -1) for _ in probes]
  evaluation = probes[0].evaluation  # every probe of a batch evaluates alike (or none does)
  # Chunks end where the host has work: a log line (its rate stays true) or an evaluation.
  every = math.gcd(recs[0].every, evaluation.every) if evaluation else recs[0].every
  i = 0
  while i < total:
    m = min(every - i % every, total - i)
    idx = [np.stack([data_lib.batch_indices(n, j, tcfg.batch_size, p.seed)
                     for j in range(i, i + m)]) for p in probes]
    state, metrics = run(state, x, y, jnp.asarray(np.stack(idx) if k > 1 else idx[0]))
    metrics = jax.device_get(metrics)
    for s, rec in enumerate(recs):
      rec.record_chunk(i, {name: v[s] if k > 1 else v for name, v in metrics.items()})
    i += m
    if evaluation is not None and (i % evaluation.every == 0 or i == total):
      params = jax.device_get(state["params"])
      for s, p in enumerate(probes):
        current = jax.tree.map(lambda a, s=s: a[s], params) if k > 1 else params
        e = {k_: float(v) for k_, v in p.evaluation.evaluate(current).items()}
        evals[s].append({"step": i, **e})
        if p.evaluation.metric and p.evaluation.better(e[p.evaluation.metric], best[s][1]):
          best[s] = (current, e[p.evaluation.metric], i)
  final = jax.device_get(state["params"])
  seconds = time.time() - t0
  out = []
  for s, rec in enumerate(recs):
    last = jax.tree.map(lambda a, s=s: a[s], final) if k > 1 else final
    params = best[s][0] if best[s][0] is not None else last
    out.append(FitResult(params, rec.history, total, seconds / k, 0, evals[s],
                         best[s][2] if best[s][0] is not None else -1))
  return out


_VMAPPED = {}  # a probe program -> its version over a leading seeds axis


def _vmapped(run):
  if run not in _VMAPPED:
    _VMAPPED[run] = jax.jit(jax.vmap(run))
  return _VMAPPED[run]


def probe_logits(params: dict, features: np.ndarray) -> np.ndarray:
  return np.asarray(features @ np.asarray(params["cls_head"]), np.float32)
