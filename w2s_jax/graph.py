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
"""
import dataclasses
import logging
import time
from typing import Callable, NamedTuple

from w2s_jax import stages

log = logging.getLogger("w2s_jax")


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


def execute(graph: Graph, store) -> dict:
  """Run every stage that is not cached, in order; returns {"ran": {kind: n}, "cached": n}."""
  ran, cached, n = {}, 0, len(graph)
  todo = [s for s in graph if not store.done(s.kind, s.key)]
  left = {s.name: todo[j:] for j, s in enumerate(todo)}  # each stage's remaining work
  seconds = {}  # kind -> wall times of the stages run so far: the run's ETA, kind by kind
  for i, stage in enumerate(graph):
    if stage.name not in left:
      cached += 1
      log.info("stage %d of %d [%s] cached (%s)", i + 1, n, stage.label, stage.name)
      continue
    log.info("stage %d of %d [%s] running (%s%s)%s", i + 1, n, stage.label, stage.name,
             f", {stage.cost}" if stage.cost else "", _eta(left[stage.name], seconds))
    t0 = time.time()
    out = stage.run()
    metrics = dict(out.metrics or {})
    metrics.setdefault("seconds", time.time() - t0)
    store.save(stage.kind, stage.key, {"kind": stage.kind, "label": stage.label, **stage.spec},
               params=out.params, arrays=out.arrays, metrics=metrics)
    ran[stage.kind] = ran.get(stage.kind, 0) + 1
    seconds.setdefault(stage.kind, []).append(time.time() - t0)
    log.info("stage %d of %d [%s] done in %.1fs", i + 1, n, stage.label, time.time() - t0)
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
