"""Paired comparisons of a workdir's runs: the same replicate seeds (so the same splits, weak
models and ceilings) and the same test rows, resampled jointly (metrics.paired_interval).

  method - method        per (task, weak, strong): each method's pooled PGR minus the reference
                         method's (naive xent; for a chess ladder, bootstrapped - naive), and
                         the students' accuracy difference
  student - no fine-tune each pooled student against its strong model with no fine-tuning
                         (zero-shot prompt, or a chess rung's pretrained checkpoint) on the
                         same test rows: how much the weak labels taught beyond what was there
  no fine-tune PGR       that untrained model's PGR against the same weak model and ceiling: a
                         student's PGR means little unless it exceeds this

Rows are result rows (report.load_rows), their `pool` naming what they measure and `recipe` how.
"""
import numpy as np

from w2s_jax import metrics

ROLES = ("weak", "student", "ceiling")


def method_of(r: dict, label) -> str:
  """What a row's student did: its label (loss, gft, oracle, variant), after the ladder
  method (naive | bootstrap) on a chess ladder."""
  return f"{r['method']} {label(r)}" if r.get("method") else label(r)


def _group(r: dict) -> tuple:
  """Rows of one group share the seeds' splits and test rows: task, test rows, models."""
  return (r["task"], r.get("data_key"), r["weak"], r["strong"], r.get("rung"))


def reference_of(r: dict, label) -> str | None:
  """The label (by `label`) of the method a row is compared against: naive with the same loss
  for a bootstrapped student, naive xent (without gft) for any other (a loss, gft, or a
  methods.py student: filter, ensemble); None for the reference itself. The variant stays: a
  grid point is compared within its own recipe."""
  method = r.get("method")
  other = ({**r, "method": "naive"} if method in ("naive", "bootstrap") else
           {**r, "method": "", "loss": "xent", "gft": False})
  ref = label(other)
  return None if ref == label(r) else ref


def comparisons(rows: list[dict], correct, label, samples: int = 1000) -> dict:
  """{"methods": [method - reference per group], "baselines": [per pooled student: student -
  no fine-tune, no-fine-tune PGR]}. `correct(kind, key)` -> a stage's per-row correctness."""
  groups = {}
  for r in rows:
    groups.setdefault(_group(r), {}).setdefault(method_of(r, label), {})[r["seed"]] = r
  out = {"methods": [], "baselines": []}
  for by_method in groups.values():
    for method, seeds in by_method.items():
      first = seeds[min(seeds)]
      ref = reference_of(first, lambda r: method_of(r, label))
      same = ref is not None and ref in by_method and all(
          by_method[ref].get(k, {}).get("predict_keys") == r["predict_keys"]
          for k, r in seeds.items())  # one student in two roles (a ladder's first rung)
      common = sorted(set(seeds) & set(by_method.get(ref, {})))
      if ref is not None and ref in by_method and not same and common:
        runs = [[correct("predict", by_method[ref][s]["predict_keys"][n]) for n in ROLES] +
                [correct("predict", seeds[s]["predict_keys"][n]) for n in ROLES] for s in common]
        iv = metrics.paired_intervals(runs, {
            "pgr": lambda a: metrics.pgr_of(a, 3, 4, 5) - metrics.pgr_of(a, 0, 1, 2),
            "acc": lambda a: a[..., 4] - a[..., 1]}, samples=samples)
        pgr, acc = iv["pgr"], iv["acc"]
        out["methods"].append({**_names(first), "method": method, "against": ref,
                               "seeds": len(common), "pgr_diff": pgr["value"],
                               "pgr_diff_ci95": pgr["ci95"], "acc_diff": acc["value"],
                               "acc_diff_ci95": acc["ci95"]})
      keyed = [] if same else [s for s in sorted(seeds) if seeds[s].get("no_finetune_key")]
      if keyed:
        runs = [[correct("predict", seeds[s]["predict_keys"][n]) for n in ROLES] +
                [correct(*seeds[s]["no_finetune_key"])] for s in keyed]
        iv = metrics.paired_intervals(runs, {
            "gain": lambda a: a[..., 1] - a[..., 3],
            "nft": lambda a: metrics.pgr_of(a, 0, 3, 2)}, samples=samples)
        gain, nft = iv["gain"], iv["nft"]
        acc = np.asarray(runs, np.float32).mean((0, 2))
        out["baselines"].append({**_names(first), "method": method, "seeds": len(keyed),
                                 "weak_acc": float(acc[0]), "ceiling_acc": float(acc[2]),
                                 "no_finetune_acc": float(acc[3]),
                                 "over_no_finetune": gain["value"],
                                 "over_no_finetune_ci95": gain["ci95"],
                                 "no_finetune_pgr": nft["value"],
                                 "no_finetune_pgr_ci95": nft["ci95"],
                                 "pgr_valid": bool(acc[2] > acc[0])})
  return out


def _names(r: dict) -> dict:
  return {k: r[k] for k in ("setting", "task", "weak", "strong", "rung", "variant") if k in r}


def _v(x, spec: str = "+.3f") -> str:
  return "n/a" if x is None or not np.isfinite(x) else format(x, spec)


def _ci(ci) -> str:
  if ci is None or any(x is None or not np.isfinite(x) for x in ci):
    return "[n/a]"
  return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def lines(paired: dict) -> list[str]:
  """The paired comparisons as report lines (only where some exist)."""
  out = []
  if paired["methods"]:
    out += ["", "paired comparisons (same seeds, splits, weak models and test rows; 95% "
            "intervals resampling seeds and test rows jointly):"]
    for c in paired["methods"]:
      out.append(f"{c['task']} {c['weak']} -> {c['strong']}: {c['method']} - {c['against']} "
                 f"over {c['seeds']} seeds: PGR {_v(c['pgr_diff'])} {_ci(c['pgr_diff_ci95'])}, "
                 f"student accuracy {_v(c['acc_diff'])} {_ci(c['acc_diff_ci95'])}")
  if paired["baselines"]:
    out += ["", "against the strong model with no fine-tuning (paired on the test rows):"]
    for b in paired["baselines"]:
      star = "" if b["pgr_valid"] else "*"
      out.append(f"{b['task']} {b['weak']} -> {b['strong']} [{b['method']}] over {b['seeds']} "
                 f"seeds: student - no fine-tune {_v(b['over_no_finetune'])} "
                 f"{_ci(b['over_no_finetune_ci95'])}; no-fine-tune accuracy "
                 f"{_v(b['no_finetune_acc'], '.3f')}, its PGR {_v(b['no_finetune_pgr'], '+.2f')}{star} "
                 f"{_ci(b['no_finetune_pgr_ci95'])}")
  return out
