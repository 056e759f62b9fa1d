"""Result rows of a whole workdir and their pooling over seeds.

Every finished run (one result row) is written to WORKDIR/rows/<hash of its id>.json; results.json
is rebuilt from all of them (so a later invocation with other seeds or pairs adds to, never
replaces, what is there, and a damaged results.json is simply rebuilt), with pooled figures over
every row of the workdir recomputed from the predict stages' per-example correctness. An id is
what the row measures, its seed and its recipe (`row_identity`): seeds pool within a recipe, and
two configs (two points of a grid) never share a row or a pool.
"""
import hashlib
import json
import logging

import numpy as np
from etils import epath

from w2s_jax import files, metrics, paired, stages, summary
from w2s_jax.files import json_safe
from w2s_jax.tables import method_label

log = logging.getLogger("w2s_jax")


ROLES = ("weak", "student", "ceiling")
_CORRECT = {}  # stage folder -> per-example correctness (a finished stage never changes)


def _correct(store, key: str, kind: str = "predict") -> np.ndarray:
  where = str(store.path(kind, key))
  if where not in _CORRECT:
    _CORRECT[where] = store.arrays(kind, key)["correct"]
  return _CORRECT[where]


def row_identity(group: list, seed: int, predicts: list, cfg) -> dict:
  """The fields that name a result row: `pool` (what it measures: task, models, loss, ...),
  `recipe` (a hash of how: its test predictions' stage recipes, equal for every seed of one
  config), `id` (pool, seed and recipe: two configs never write the same row) and `config`
  (the config's entries by dotted key, which label the recipes of a pool in the tables)."""
  recipe = stages.stage_key({"predict": [p.recipe for p in predicts]})
  return {"id": "|".join(str(x) for x in [*group, seed, recipe]),
          "pool": "|".join(str(x) for x in group), "recipe": recipe,
          "config": flat_config(cfg)}


def flat_config(cfg) -> dict:
  """cfg's entries by dotted key, without `seeds` and `sweep` (one point of a grid)."""
  out = {}

  def walk(node, prefix):
    for k, v in node.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}.")
      else:
        out[f"{prefix}{k}"] = v
  walk({k: v for k, v in json.loads(cfg.to_json_best_effort()).items()
        if k not in ("seeds", "sweep")}, "")
  return out


def label_variants(rows: list[dict]) -> None:
  """Each row's `variant`: "" where its pool holds one recipe; else the config entries where the
  pool's recipes differ ("train.lr=0.001"), so that a grid over a training knob, or a second
  invocation with other settings, shows as its own line instead of pooling with the first."""
  by = {}
  for r in rows:
    by.setdefault(r["pool"], {}).setdefault(r["recipe"], r.get("config", {}))
  labels = {}
  for pool, configs in by.items():
    if len(configs) < 2:
      continue
    # A key some configs lack (added to the defaults after their rows were written) differs
    # only where the configs that have it disagree, and labels only those.
    keys = sorted(set().union(*configs.values()))
    differ = [k for k in keys if len({json.dumps(c[k], sort_keys=True)
                                      for c in configs.values() if k in c}) > 1]
    for recipe, c in configs.items():
      text = ", ".join(f"{k}={_value(c[k])}" for k in differ if k in c)
      # Equal configs with different recipes: other code, data or checkpoints.
      labels[pool, recipe] = text or f"recipe {recipe[:8]}"
  for r in rows:
    r["variant"] = labels.get((r["pool"], r["recipe"]), "")


def _value(v) -> str:
  return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)


def pooled(rows: list[dict], store, samples: int = 1000) -> list[dict]:
  """Per pool and recipe (a row's "pool": what it measures; "recipe": how, without the seed),
  over every seed in `rows`: mean accuracies, PGR of the means and 95% intervals resampling
  seeds and test examples."""
  groups = {}
  for r in rows:
    groups.setdefault((r["pool"], r["recipe"]), []).append(r)
  out = []
  for (pool, _), rs in groups.items():
    rs = sorted(rs, key=lambda r: r["seed"])
    runs = [[_correct(store, r["predict_keys"][n]) for n in ROLES] for r in rs]
    keep = ("setting", "task", "data_key", "weak", "strong", "supervisor", "loss", "gft",
            "oracle", "method", "rung", "params", "prior", "chance", "n_test", "zero_shot",
            "legal_mask", "recipe", "variant", "seed_scope")
    entry = {"pool": pool, **{k: rs[0][k] for k in keep if k in rs[0]},
             "seed_list": [r["seed"] for r in rs],
             **metrics.pooled_pgr(runs, samples=samples), **summary.pooled_misfit(rs)}
    if all(r.get("dev_predict_keys") for r in rs):  # the development slice: no table shows it
      entry["dev"] = metrics.pooled_pgr([[_correct(store, r["dev_predict_keys"][n]) for n in ROLES]
                                         for r in rs], samples=samples)
    out.append(entry)
  return out


def write_results(workdir: str, rows: list[dict], store, samples: int = 1000) -> dict:
  """Add `rows` to the workdir's rows and rebuild results.json (under a lock, atomically)."""
  root = epath.Path(workdir)
  (root / "rows").mkdir(parents=True, exist_ok=True)
  for r in rows:
    name = hashlib.sha256(r["id"].encode()).hexdigest()[:20]
    files.atomic_write_text(root / "rows" / f"{name}.json", json.dumps(json_safe(r), indent=1))
  with files.locked(root / "results.json"):
    return rebuild(workdir, store, samples)


def load_rows(workdir: str) -> list[dict]:
  rows, old = [], []
  for path in sorted((epath.Path(workdir) / "rows").glob("*.json")):
    try:
      row = json.loads(path.read_text())
    except json.JSONDecodeError:
      log.warning("%s: damaged result row, left out (rerun its config to write it again)", path)
      continue
    if "recipe" not in row:  # its seeds could pool with another config's
      old.append(path.name)
      continue
    rows.append(row)
  if old:
    log.warning("%s/rows: %d result rows without a recipe (an earlier version wrote them) left "
                "out: %s; rerun their config to write them again (their stages are cached)",
                workdir, len(old), ", ".join(old))
  return sorted(rows, key=lambda r: r["id"])


def rebuild(workdir: str, store, samples: int = 1000) -> dict:
  rows = load_rows(workdir)
  label_variants(rows)
  out = {"runs": rows, "pooled": json_safe(pooled(rows, store, samples)),
         "paired": json_safe(paired.comparisons(
             rows, lambda kind, key: _correct(store, key, kind), method_label, samples))}
  files.atomic_write_text(epath.Path(workdir) / "results.json", json.dumps(out, indent=1))
  return out


# ------------------------------------------------------------------------------------ tables
