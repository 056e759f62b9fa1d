"""A declarative graph of cached stages: settings build it, `execute` runs what is not cached.

A Stage is (kind, spec, run): its key is the content hash of its spec, which holds everything
that determines its outputs and nothing else (upstream stages enter by their keys, so computing a
key never runs anything). Kinds:
  train     parameters: model, init (checkpoint or upstream stage), training rows, the stage whose
            predictions are the labels (or ground truth), loss and hyper-parameters, schedule, seed
  predict   a train stage (or an untrained model) x a split x decoding options: probabilities,
            answers, or features; on a labelled split it also stores per-row correctness
  corpus, pretrain, features, gft: setting-specific producers
A graph from several configs (a sweep) is their union: a stage with the same kind and key is
added once, so a model trained once serves as supervisor, ceiling and every pair that needs it.

Stages that differ only by seed (and rows of equal shape) may declare a `Batch`: `execute` runs
the stages of one batch key as one program (a leading seeds axis), each saved as its own stage:
keys, files and results are those of separate runs. Builders declare batches where they win
(linear probes: measured in BUILD_NOTES "Seeds in one program"), not for full fine-tunes.
"""
import dataclasses
import logging
import time
from typing import Callable, NamedTuple

from w2s_jax import stages

log = logging.getLogger("w2s_jax")


class Batch(NamedTuple):
  """How a stage runs together with others of the same `key` (never hashed)."""
  key: str
  prepare: Callable  # () -> this stage's inputs (its upstream stages are finished)
  run: Callable  # [prepared inputs of each stage] -> [Output of each], in order


def seeds_key(spec: dict, **extra) -> str:
  """What stages that may run as one program share: a train spec without what a seed draws
  (its seed, rows, labels, features and held-out rows: inputs of the program, not the
  program)."""
  shared = {k: v for k, v in spec.items() if k not in ("seed", "data", "labels", "features")}
  if "early_stopping" in shared:
    shared["early_stopping"] = {k: v for k, v in shared["early_stopping"].items() if k != "val"}
  return stages.stage_key({**shared, **extra})


class Output(NamedTuple):
  params: dict | None = None
  arrays: dict | None = None
  metrics: dict | None = None


@dataclasses.dataclass(eq=False)
class Stage:
  kind: str
  spec: dict
  label: str  # how logs and the plan name it (not hashed)
  run: Callable[[], Output]  # computes the outputs; its upstream stages are finished
  deps: tuple = ()  # upstream Stages
  cost: str = ""  # a rough cost for the plan (e.g. "40 steps x 32"), not hashed
  seed: int | None = None  # the run seed a per-seed stage was built for (its spec's "seed")
  # Values of the spec drawn by the seed (its own split's data keys) -> what they stand for
  # whatever the seed ("a of the pool cut by the seed"): not hashed into the recipe.
  seeded: dict = dataclasses.field(default_factory=dict)
  batch: Batch | None = None  # stages of one batch key may run as one program (execute)

  def __post_init__(self):
    self.key = stages.stage_key({"kind": self.kind, **self.spec})
    # The key without the run seed, upstream stages entering by their recipes: equal for the
    # seeds of one config, different for two configs (what pools a result row's seeds).
    spec = {k: v for k, v in self.spec.items() if not (k == "seed" and self.seed is not None)}
    self.recipe = stages.stage_key({"kind": self.kind, **_swap(spec, {
        **self.seeded, **{d.key: d.recipe for d in self.deps}})})

  @property
  def name(self) -> str:
    return f"{self.kind}-{self.key}"


def _swap(x, keys: dict):
  """`x` with every string that is a key of `keys` replaced by its value."""
  if isinstance(x, dict):
    return {k: _swap(v, keys) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_swap(v, keys) for v in x]
  return keys.get(x, x) if isinstance(x, str) else x


class Graph:
  """Stages in dependency order (each added after its upstream stages), deduplicated by key."""

  def __init__(self):
    self._stages: dict[str, Stage] = {}

  def add(self, stage: Stage) -> Stage:
    """Add `stage` (after its deps) and return the graph's stage of that key (an equal one
    added earlier wins: the union of two configs' graphs runs it once)."""
    if stage.name in self._stages:
      return self._stages[stage.name]
    for dep in stage.deps:
      if dep.name not in self._stages:
        raise ValueError(f"stage {stage.label} added before its upstream stage {dep.label}")
    self._stages[stage.name] = stage
    return stage

  def __iter__(self):
    return iter(self._stages.values())

  def __len__(self):
    return len(self._stages)

  def counts(self) -> dict:
    out = {}
    for s in self:
      out[s.kind] = out.get(s.kind, 0) + 1
    return out


def upstream(graph: Graph, targets) -> Graph:
  """The stages `targets` need (themselves and everything upstream), in the graph's order: a
  benchmark or an analysis runs part of an experiment's graph."""
  need, todo = set(), list(targets)
  while todo:
    s = todo.pop()
    if s.name not in need:
      need.add(s.name)
      todo.extend(s.deps)
  out = Graph()
  for s in graph:
    if s.name in need:
      out.add(s)
  return out


def plan_table(graph: Graph, store) -> str:
  """The plan: every stage with its kind, key, whether it is cached, and its cost."""
  rows = [(str(i + 1), s.kind, s.key, "cached" if store.done(s.kind, s.key) else "to run",
           s.cost, s.label) for i, s in enumerate(graph)]
  head = ("#", "kind", "key", "state", "cost", "stage")
  widths = [max(len(r[j]) for r in rows + [head]) for j in range(len(head))]
  fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
  todo = [r for r in rows if r[3] == "to run"]
  by_kind = {}
  for r in todo:
    by_kind[r[1]] = by_kind.get(r[1], 0) + 1
  lines = [fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows]
  lines.append(f"{len(rows)} stages: {len(rows) - len(todo)} cached, {len(todo)} to run "
               f"({', '.join(f'{n} {k}' for k, n in sorted(by_kind.items())) or 'nothing'})")
  return "\n".join(lines)


def execute(graph: Graph, store, batch: bool = True) -> dict:
  """Run every stage that is not cached, in order; returns {"ran": {kind: n}, "cached": n}.
  With `batch`, a stage with a Batch runs with every unfinished stage of its key as one program,
  after their own upstream stages (run first, in graph order)."""
  ran, cached, n = {}, 0, len(graph)
  todo = [s for s in graph if not store.done(s.kind, s.key)]
  left = {s.name: todo[j:] for j, s in enumerate(todo)}  # each stage's remaining work
  order = {s.name: i for i, s in enumerate(graph)}
  finished = set()
  seconds = {}  # kind -> wall times of the stages run so far: the run's ETA, kind by kind

  def save(stage, out, t0, elapsed=None):
    metrics = dict(out.metrics or {})
    metrics.setdefault("seconds", time.time() - t0 if elapsed is None else elapsed)
    store.save(stage.kind, stage.key, {"kind": stage.kind, "label": stage.label, **stage.spec},
               params=out.params, arrays=out.arrays, metrics=metrics)
    ran[stage.kind] = ran.get(stage.kind, 0) + 1
    seconds.setdefault(stage.kind, []).append(metrics["seconds"])
    finished.add(stage.name)

  def run_one(stage):
    i = order[stage.name]
    log.info("stage %d of %d [%s] running (%s%s)%s", i + 1, n, stage.label, stage.name,
             f", {stage.cost}" if stage.cost else "", _eta(left[stage.name], seconds))
    t0 = time.time()
    save(stage, stage.run(), t0)
    log.info("stage %d of %d [%s] done in %.1fs", i + 1, n, stage.label, time.time() - t0)

  def run_batch(group):
    need = [u for u in upstream(graph, group) if u.name in left and u.name not in finished
            and u not in group]
    for u in need:  # the peers' own upstream stages (a later seed's weak labels)
      run_one(u)
    log.info("stages %s [%s ... x%d] running as one program (%s)",
             ", ".join(str(order[s.name] + 1) for s in group), group[0].label, len(group),
             group[0].batch.key[:60])
    t0 = time.time()
    outs = group[0].batch.run([s.batch.prepare() for s in group])
    elapsed = (time.time() - t0) / len(group)  # each stage's share of the program's time
    for s, out in zip(group, outs):
      save(s, out, t0, elapsed)
    log.info("%d stages [%s ...] done in %.1fs", len(group), group[0].label, time.time() - t0)

  for i, stage in enumerate(graph):
    if stage.name in finished:
      continue
    if stage.name not in left:
      cached += 1
      log.info("stage %d of %d [%s] cached (%s)", i + 1, n, stage.label, stage.name)
      continue
    group = [s for s in graph if batch and stage.batch and s.batch and
             s.batch.key == stage.batch.key and s.name in left and s.name not in finished]
    if len(group) > 1:
      run_batch(group)
    else:
      run_one(stage)
  return {"ran": ran, "cached": cached, "stages": n}


def _eta(left: list, seconds: dict) -> str:
  """The remaining stages' time from the mean time of the stages of their kind run so far;
  kinds not timed yet are counted, not guessed."""
  known = [s for s in left if s.kind in seconds]
  if not known:
    return ""
  eta = sum(sum(seconds[s.kind]) / len(seconds[s.kind]) for s in known)
  unknown = len(left) - len(known)
  return f"; ETA ~{eta / 60:.1f} min" + (f" + {unknown} stages of kinds not timed yet"
                                         if unknown else "")
