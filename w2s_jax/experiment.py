"""One invocation: a config (or the grid its `sweep` declares) -> one stage graph -> results.

  configs = sweep.expand(cfg)    the sweep's grid, one config per point (or just cfg)
  graph   = union of every config's graph (a stage with the same key is added once)
  --plan  prints the graph and exits; otherwise `graph.execute` runs what is not cached
  results every row appended to WORKDIR/results.json by id; pooled figures over the whole workdir
"""
import logging

import jax
from etils import epath

from w2s_jax import assets, config as config_lib, distributed, graph as graph_lib, models, \
    report, results as results_lib, runtime, settings, sweep
from w2s_jax.errors import ConfigError, WorkdirError

log = logging.getLogger("w2s_jax")


def plan(cfg, workdir: str):
  """(runtime, graph, builders) of cfg and its sweep, without running anything."""
  configs = sweep.expand(cfg)
  for i, c in enumerate(configs):
    try:
      config_lib.validate(c, jax.device_count())
    except ConfigError as e:
      if len(configs) == 1:
        raise
      raise ConfigError(f"sweep point {i + 1} of {len(configs)} ({c.weak.size}/{c.weak.init} "
                        f"-> {c.strong.size}/{c.strong.init}): {e}") from None
  # Every external asset (data, weights) before anything is built: one that cannot be had stops
  # the run here with one line, not a traceback after the first stages.
  assets.ensure(configs)
  try:
    rt = runtime.Runtime(configs[0], workdir)
  except OSError as e:  # the stage folder cannot be made
    raise WorkdirError(f"--workdir={workdir}: cannot write there ({e.strerror})") from None
  graph = graph_lib.Graph()
  builders = [settings.get(c.experiment).build(c, rt, graph) for c in configs]
  log.info("plan: %d configs, %d stages (%s)", len(configs), len(graph), graph.counts())
  return rt, graph, builders


def _write_config(cfg, workdir: str) -> None:
  path = epath.Path(workdir)  # local folders and gs:// buckets alike
  try:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(cfg.to_json_best_effort(indent=1))
  except OSError as e:
    raise WorkdirError(f"--workdir={workdir}: cannot write there ({e.strerror})") from None


def run(cfg, workdir: str, plan_only: bool = False, only=()) -> list[dict]:
  """Every stage of cfg (cached ones are read), then results.json and the tables. `only`: stage
  kinds to run, with what they need, and nothing else (no results), e.g. ("corpus",) to prepare
  a chess corpus here for a machine without network or stockfish."""
  rt, graph, builders = plan(cfg, workdir)
  unknown = set(only) - {s.kind for s in graph}
  if unknown:
    raise ConfigError(f"--only={','.join(only)}: no stage of kind {', '.join(sorted(unknown))} "
                      f"in this config (kinds: {', '.join(sorted(graph.counts()))})")
  if only:
    graph = graph_lib.upstream(graph, [s for s in graph if s.kind in only])
  if distributed.is_main() and not plan_only:
    _write_config(cfg, workdir)
  if plan_only:
    if distributed.is_main():
      print(graph_lib.plan_table(graph, rt.store), flush=True)
    return []
  # Every checkpoint's headers, tensor names and shapes, and every split's rows and classes,
  # before the first stage trains: bad input fails now, not after the weak model trained.
  for init, tr in dict.fromkeys(c for b in builders for c in b.checkpoints()):
    models.check_checkpoint(init, tr.abstract_params())
  for b in builders:
    b.check_data()
  compiles = runtime.COMPILES["n"]
  stats = graph_lib.execute(graph, rt.store)
  if only:
    log.info("--only=%s: stages run %s, %d cached; no results", ",".join(only), stats["ran"],
             stats["cached"])
    return []
  rows = [row for b in builders for row in b.rows()]
  if distributed.is_main():
    results = results_lib.write_results(workdir, rows, rt.store,
                                   samples=cfg.bootstrap_samples)
    log.info("results: %s/results.json (%d rows in the workdir); stages run %s, %d cached; "
             "%d programs compiled", workdir, len(results["runs"]), stats["ran"],
             stats["cached"], runtime.COMPILES["n"] - compiles)
    print(report.tables(results), flush=True)
    print(stage_times(graph, rt.store), flush=True)
  distributed.barrier("results written")
  return rows


def stage_times(graph, store) -> str:
  """Wall time of this invocation's stages by kind (as measured when each ran)."""
  seconds, counts = {}, {}
  for s in graph:
    seconds[s.kind] = seconds.get(s.kind, 0.0) + store.metrics(s.kind, s.key).get("seconds", 0)
    counts[s.kind] = counts.get(s.kind, 0) + 1
  return "stage wall times: " + ", ".join(
      f"{k} {seconds[k]:.0f}s ({counts[k]})" for k in sorted(seconds))
