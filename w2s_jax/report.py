"""Results of a whole workdir: training metrics, results.json, tables, figures, report.md.

Every finished run (one result row) is written to WORKDIR/rows/<hash of its id>.json; results.json
is rebuilt from all of them (so a later invocation with other seeds or pairs adds to, never
replaces, what is there, and a damaged results.json is simply rebuilt), with pooled figures over
every row of the workdir recomputed from the predict stages' per-example correctness. An id is
what the row measures, its seed and its recipe (`row_identity`): seeds pool within a recipe, and
two configs (two points of a grid) never share a row or a pool.

  python -m w2s_jax.report WORKDIR     re-render the tables, figures (PNG) and WORKDIR/report.md
  python -m w2s_jax.report WORKDIR --dev   the scores on the development slice (design choices)
"""
import hashlib
import json
import logging
import math
import os
import sys
import time

import numpy as np
from etils import epath

from w2s_jax import files, methods, metrics, paired, stages, summary

log = logging.getLogger("w2s_jax")


class MetricWriter:
  """Training metrics of every stage: a progress line on the console and one JSON line per log
  step or evaluation in metrics.jsonl (time, stage key and label); with `tensorboard`, event
  files under WORKDIR/tensorboard/<stage label>-<key> (one run per stage; tensorboardX); with
  WANDB_PROJECT set and wandb installed, one W&B run per stage. Process 0 only."""

  def __init__(self, workdir: str, tensorboard: bool = False):
    self.root = epath.Path(workdir)
    self.path = self.root / "metrics.jsonl"
    self.tensorboard, self.stage_key = tensorboard, ""
    self._sinks = {}

  def for_stage(self, key: str) -> "MetricWriter":
    """The writer of one stage: its lines carry the stage key."""
    w = MetricWriter.__new__(MetricWriter)
    w.__dict__.update(self.__dict__, stage_key=key)
    return w

  def _line(self, label: str, kind: str, m: dict) -> None:
    with self.path.open("a") as f:
      f.write(json.dumps({"time": time.time(), "stage": label, "stage_key": self.stage_key,
                          "kind": kind, **_clean(m)}) + "\n")
    for sink in self._external(label):
      sink(kind, m)

  def _external(self, label: str) -> list:
    """TensorBoard and W&B writers of this stage, opened on first use."""
    key = (label, self.stage_key)
    if key not in self._sinks:
      sinks = []
      run = f"{label.replace(':', '_')}-{self.stage_key}".strip("-")
      if self.tensorboard:
        from tensorboardX import SummaryWriter  # noqa: PLC0415  (optional: the tensorboard extra)
        tb = SummaryWriter(str(self.root / "tensorboard" / run))

        def to_tb(kind, m, tb=tb):
          for k, v in m.items():
            if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
              tb.add_scalar(f"{kind}/{k}", v, int(m["step"]))
          tb.flush()
        sinks.append(to_tb)
      if os.environ.get("WANDB_PROJECT"):
        import wandb  # noqa: PLC0415  (optional)
        wb = wandb.init(project=os.environ["WANDB_PROJECT"], name=run, reinit="create_new",
                        config={"stage": label, "stage_key": self.stage_key})
        sinks.append(lambda kind, m, wb=wb: wb.log(
            {f"{kind}/{k}": v for k, v in m.items() if k != "step"}, step=int(m["step"])))
      self._sinks[key] = sinks
    return self._sinks[key]

  def write(self, stage: str, m: dict, total_steps: int):
    step = m["step"]
    log.info("[%s] step %d/%d (%3.0f%%) loss %.4f acc %.3f lr %.2e %.0f ex/s", stage, step + 1,
             total_steps, 100 * (step + 1) / total_steps, m["loss"], m["accuracy"],
             m["lr"], m["examples_per_s"])
    self._line(stage, "train", m)

  def write_eval(self, stage: str, step: int, m: dict):
    self._line(stage, "eval", {"step": step, **m})


def _clean(x):
  """JSON has no NaN: write null."""
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if isinstance(x, dict):
    return {k: _clean(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_clean(v) for v in x]
  if isinstance(x, np.generic):
    return _clean(x.item())
  return x


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
    files.atomic_write_text(root / "rows" / f"{name}.json", json.dumps(_clean(r), indent=1))
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
  out = {"runs": rows, "pooled": _clean(pooled(rows, store, samples)),
         "paired": _clean(paired.comparisons(
             rows, lambda kind, key: _correct(store, key, kind), method_label, samples))}
  files.atomic_write_text(epath.Path(workdir) / "results.json", json.dumps(out, indent=1))
  return out


# ------------------------------------------------------------------------------------ tables
def _f(x, spec):
  return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else \
      format(x, spec)


def _ci(ci):
  return "[{}, {}]".format(_f(ci[0], "+.2f"), _f(ci[1], "+.2f")) if ci else "n/a"


def method_label(r) -> str:
  """A row's loss, "+gft", "(oracle-selected)" for a student selected on ground truth, and its
  recipe's variant where its pool holds several."""
  return r["loss"] + ("+gft" if r.get("gft") else "") + (
      " (oracle-selected)" if r.get("oracle") else "") + (
      f" [{r['variant']}]" if r.get("variant") else "")


def _table(head: list[str], rows: list[list]) -> list[str]:
  """Right-aligned columns as wide as their widest cell."""
  widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
  line = lambda cells: " ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
  return [line(head), "-" * sum(w + 1 for w in widths)] + [line(r) for r in rows]


def summary_table(runs: list[dict], pool: list[dict] = (), baselines: list[dict] = ()) -> str:
  """Classification and reward rows: one line per run, then the pooled lines. '*': the ceiling
  does not beat the weak model, so that PGR means nothing. A bootstrapped pair's rows name
  their method (naive | bootstrap) before the loss."""
  label = lambda r: paired.method_of(r, method_label)  # noqa: E731
  head = ["task", "weak", "strong", "loss", "seed",
          "prior", "weak", "student", "ceiling", "PGR",
          "PGR 95% CI", "agree"]
  body = [[r["task"], r["weak"], r["strong"], label(r), r["seed"],
           _f(r.get("prior"), ".3f"),
           _f(r["weak_acc"], ".3f"), _f(r["student_acc"], ".3f"), _f(r["ceiling_acc"], ".3f"),
           _f(r["pgr"], "+.2f") + ("" if r["pgr_valid"] else "*"), _ci(r["pgr_ci95"]),
           _f(r["agreement"], ".3f")] for r in runs]
  lines = _table(head, body)
  if any(not r["pgr_valid"] for r in runs):
    lines.append("* ceiling <= weak: PGR is undefined there and left out of medians")
  for m in dict.fromkeys(label(r) for r in runs):
    valid = [r["pgr"] for r in runs if label(r) == m and r["pgr_valid"]]
    med = f"{np.median(valid):+.2f}" if valid else "n/a (no run whose ceiling beats its weak model)"
    lines.append(f"median PGR [{m}] over {len(valid)} valid runs: {med}")
  lines += baseline_lines(runs)
  multi = [p for p in pool if p["seeds"] > 1]
  if multi:
    lines += ["", "pooled over seeds (mean accuracies; PGR of the means; 95% interval resampling "
              "seeds and test examples):"]
    head = ["task", "weak", "strong", "loss", "seeds",
            "weak", "student", "ceiling", "PGR", "PGR 95% CI"]
    body = [[p["task"], p["weak"], p["strong"], label(p), p["seeds"],
             _f(p["weak_acc"], ".3f"), _f(p["student_acc"], ".3f"), _f(p["ceiling_acc"], ".3f"),
             _f(p["pgr"], "+.2f") + ("" if p["pgr_valid"] else "*"), _ci(p["pgr_ci95"])]
            for p in multi]
    # The strong model with no fine-tuning in the student's column: the PGR it gets for free.
    seen = set()
    for b in baselines:  # one per pair and variant: its weak model and ceiling are the variant's
      key = (b["task"], b["weak"], b["strong"], b.get("variant", ""))
      if key not in seen and b["seeds"] > 1:
        seen.add(key)
        body.append([b["task"], b["weak"], b["strong"], "no fine-tune" + (
                     f" [{b['variant']}]" if b.get("variant") else ""), b["seeds"],
                     _f(b["weak_acc"], ".3f"), _f(b["no_finetune_acc"], ".3f"),
                     _f(b["ceiling_acc"], ".3f"),
                     _f(b["no_finetune_pgr"], "+.2f") + ("" if b["pgr_valid"] else "*"),
                     _ci(b["no_finetune_pgr_ci95"])])
    lines += _table(head, body)
    lines += summary.lines(multi, label)
  return "\n".join(lines)


def baseline_lines(runs: list[dict]) -> list[str]:
  """Per task: the prior (the majority class's share of test) and each model's zero-shot score
  (no training: zero_shot.py), so that a null result can be told apart from a broken one."""
  lines, seen = [], set()
  for r in runs:
    for name, z in (r.get("zero_shot") or {}).items():
      if (r["task"], name) in seen:
        continue
      seen.add((r["task"], name))
      if "why" in z:
        lines.append(f"zero-shot {r['task']} {name}: n/a ({z['why']}); prior {r['prior']:.3f}")
      else:
        lines.append(f"zero-shot {r['task']} {name}: accuracy {z['acc']:.3f} "
                     f"{_ci(z['acc_ci95']).replace('+', '')}, AUROC {_f(z['auroc'], '.3f')}; "
                     f"prior {r['prior']:.3f}")
  return lines


def zero_shot_lines(entries: list[dict]) -> list[str]:
  """The go/no-go check of a chess ladder: each pretrained rung's zero-shot accuracy beside a
  random legal move (a rung at chance has no latent skill for a student to elicit); per
  variant where the workdir holds several recipes (their rungs may be pretrained apart)."""
  by = {}  # the distinct zero-shot scores -> the variants that share them
  for r in entries:  # result rows or pooled entries: both carry them
    if r.get("zero_shot") and r.get("setting") == "chess":
      z = json.dumps([r["zero_shot"], r["chance"]], sort_keys=True)
      by.setdefault(z, (r, {}))[1].setdefault(r.get("variant", ""))
  lines = []
  for r, variants in by.values():
    chance = r["chance"]
    at = f" [{'; '.join(variants)}]" if len(by) > 1 and any(variants) else ""
    for name, acc in r["zero_shot"].items():
      cells = ", ".join(f"{k} {_f(v, '.3f')}" for k, v in sorted(acc.items()))
      cells += f"; a random legal move {chance:.3f}"
      skill = acc.get("masked", acc["unmasked"])
      verdict = "" if skill is None or skill >= 2 * chance else \
          ": below twice that, little latent skill"
      lines.append(f"zero-shot {name}{at}: {cells}{verdict}")
    if verdict:  # the last rung is the top one
      lines.append(f"the top rung{at} has no latent puzzle skill worth eliciting (zero-shot below "
                   "twice a random legal move): its students cannot show weak-to-strong "
                   "generalization")
  return lines


def ladder_table(pool: list[dict], baselines: list[dict] = ()) -> str:
  """Chess: per rung and loss, over seeds: weak, naive, bootstrapped and ceiling accuracy, PGR
  of both students with 95% intervals resampling seeds and test puzzles."""
  by = {}
  for p in pool:
    by.setdefault((p["rung"], p["strong"], method_label(p)), {})[p["method"]] = p
  head = ["rung", "loss", "seeds", "weak", "naive", "boot",
          "ceiling", "PGR naive [95% CI]", "PGR boot [95% CI]", "PGR no fine-tune [95% CI]"]
  free = {}  # (rung, loss label) -> its untrained rung's paired baseline (naive's first)
  for b in sorted(baselines, key=lambda b: not b["method"].startswith("naive")):
    free.setdefault((b["strong"], b["method"].split(" ", 1)[1]), b)
  by = sorted(by.items(), key=lambda kv: (kv[0][2], kv[0][0]))  # per variant, rung by rung
  body = []
  for (_, strong, loss), m in by:
    n, b = m.get("naive"), m.get("bootstrap")
    cell = lambda p: "n/a" if p is None else f"{_f(p['pgr'], '+.2f')}" + (  # noqa: E731
        "" if p["pgr_valid"] else "*") + f" {_ci(p['pgr_ci95'])}"
    ref = n or b
    z = free.get((strong, loss))
    body.append([strong, loss, ref["seeds"], _f(ref["weak_acc"], ".3f"),
                 _f(n["student_acc"] if n else None, ".3f"),
                 _f(b["student_acc"] if b else None, ".3f"), _f(ref["ceiling_acc"], ".3f"),
                 cell(n), cell(b), "n/a" if z is None else _f(z["no_finetune_pgr"], "+.2f") + (
                     "" if z["pgr_valid"] else "*") + f" {_ci(z['no_finetune_pgr_ci95'])}"])
  lines = _table(head, body)
  for (_, strong, loss), m in by:
    sup = {k: p["supervisor"] for k, p in m.items() if p.get("supervisor")}
    if sup.get("naive") and sup.get("bootstrap") and sup["bootstrap"] != sup["naive"]:
      lines.append(f"{strong} {loss}: naive students learn {sup.get('naive')}'s labels, "
                   f"bootstrapped ones {sup['bootstrap']}'s (its bootstrapped student); PGR "
                   "measures both against the weak model M1")
  chance = next((p.get("chance") for p in pool if p.get("chance") is not None), None)
  if chance is not None:
    lines.append(f"random legal move: {chance:.3f}")
  if any(not p["pgr_valid"] for p in pool):
    lines.append("* ceiling <= weak: PGR is undefined there")
  return "\n".join(lines + zero_shot_lines(pool) + over_zero_shot_lines(by))


def over_zero_shot_lines(by: list) -> list[str]:
  """Each student against its own rung's zero-shot skill (scored as the students are: among
  legal moves when they are): a PGR above 0 with a student at or below that line recovers
  pretrained skill that survived the weak labels, not skill the labels taught. `by`: the
  ladder table's ((rung, strong, label), {method: pooled entry}) in its order."""
  lines = []
  for (_, strong, loss), m in by:
    ref = m.get("naive") or m.get("bootstrap")
    key = "masked" if ref.get("legal_mask") else "unmasked"
    zs = (ref.get("zero_shot") or {}).get(strong, {}).get(key)
    if zs is None:
      continue
    cells = ", ".join(f"{name} {_f(p['student_acc'] - zs, '+.3f')}"
                      for name, p in (("naive", m.get("naive")), ("boot", m.get("bootstrap")))
                      if p is not None)
    lines.append(f"students over their zero-shot ({key} {zs:.3f}) {strong} {loss}: {cells}")
  return lines


def tables(results: dict) -> str:
  runs, pool = results["runs"], results.get("pooled", [])
  pair = results.get("paired") or {"methods": [], "baselines": []}
  parts = []
  cls = [r for r in runs if r.get("setting", "classification") == "classification"]
  if cls:
    parts.append(summary_table(cls, [p for p in pool if p.get("setting") == "classification"],
                               [b for b in pair["baselines"] if b.get("setting") != "chess"]))
  chess_pool = [p for p in pool if p.get("setting") == "chess"]
  if chess_pool:
    parts.append(ladder_table(chess_pool, [b for b in pair["baselines"]
                                           if b.get("setting") == "chess"]))
  extra = paired.lines(pair) + summary.misfit_lines(pool, method_label) + \
      methods.quality_lines(runs)
  if extra:
    parts.append("\n".join(extra).strip("\n"))
  return "\n\n".join(parts)


def dev_table(results: dict) -> str:
  """The pooled scores on the development slice (task.n_dev, chess.n_dev): what design choices
  are made on. No other table shows them."""
  rows = [p for p in results.get("pooled", []) if p.get("dev")]
  if not rows:
    return "no development slice in this workdir (set task.n_dev or chess.n_dev)"
  head = ["task", "weak", "strong", "method", "seeds", "weak", "student", "ceiling", "PGR",
          "PGR 95% CI"]
  body = [[p["task"], p["weak"], p["strong"],
           (f"{p['method']} " if p.get("method") else "") + method_label(p), p["dev"]["seeds"],
           _f(p["dev"]["weak_acc"], ".3f"), _f(p["dev"]["student_acc"], ".3f"),
           _f(p["dev"]["ceiling_acc"], ".3f"),
           _f(p["dev"]["pgr"], "+.2f") + ("" if p["dev"]["pgr_valid"] else "*"),
           _ci(p["dev"]["pgr_ci95"])] for p in rows]
  return "\n".join(["development slice (pooled over seeds; for choosing designs, not for "
                    "reporting):"] + _table(head, body))


def _samples(workdir: str) -> int:
  """The workdir's bootstrap resamples (its last config.json), so a re-render draws the same
  intervals as the run."""
  try:
    return int(json.loads((epath.Path(workdir) / "config.json").read_text())["bootstrap_samples"])
  except (OSError, ValueError, KeyError):
    return 1000


def render(workdir: str, samples: int = 0) -> str:
  """Rebuild results.json from the workdir's rows, write the figures and report.md; returns
  the tables."""
  from w2s_jax import figures  # noqa: PLC0415  (matplotlib only when drawing)
  samples = samples or _samples(workdir)
  store = stages.StageStore(workdir)
  with files.locked(epath.Path(workdir) / "results.json"):
    results = rebuild(workdir, store, samples)
  text = tables(results)
  pngs = figures.draw_all(results, store, workdir)
  md = ["# Weak-to-strong results", "", f"Workdir `{workdir}`: {len(results['runs'])} runs.", "",
        "```", text, "```", ""] + [f"![{p.stem}]({p.name})" for p in pngs]
  files.atomic_write_text(epath.Path(workdir) / "report.md", "\n".join(md) + "\n")
  return text


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  dev = "--dev" in argv
  argv = [a for a in argv if a != "--dev"]
  if len(argv) != 1:
    sys.exit("usage: python -m w2s_jax.report WORKDIR [--dev]")
  if not (epath.Path(argv[0]) / "rows").exists():
    sys.exit(f"workdir error: {argv[0]} has no results (no rows/ folder)")
  logging.basicConfig(level=logging.WARNING)
  if dev:  # the development slice only: no report.md, no figures
    store = stages.StageStore(argv[0])
    with files.locked(epath.Path(argv[0]) / "results.json"):
      results = rebuild(argv[0], store, _samples(argv[0]))
    print(dev_table(results), flush=True)
    return
  print(render(argv[0]), flush=True)
  print(f"wrote {argv[0]}/report.md and its figures", flush=True)


if __name__ == "__main__":
  main()
