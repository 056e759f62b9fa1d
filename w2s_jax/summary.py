"""What a table of many pooled intervals supports: summaries across tasks and pairs.

  per (task, method)   valid pairs, median PGR, intervals above and below 0, and how many of
                       each chance alone would give (2.5% of the valid pairs per side, for 95%
                       intervals and a true PGR of 0)
  per comparison       each method against naive xent (logconf - xent, xent+gft - xent), over the
                       (task, weak, strong) pairs where both are valid: how often its PGR is
                       higher, the median difference, and an exact two-sided sign test

  misfit and gain       per pooled student, the mean misfit and gain over seeds (Charikar et al.
                       2024) and how many runs have gain >= misfit

Rows are the pooled rows of report.pooled (one per task, weak, strong and method).
"""
import math

import numpy as np


def sign_test(wins: int, losses: int) -> float:
  """Exact two-sided sign test (ties dropped): the probability, with wins and losses equally
  likely, of a split at least as uneven as this one."""
  n, k = wins + losses, min(wins, losses)
  if n == 0:
    return 1.0
  tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
  return min(1.0, 2 * tail)


def by_task(rows: list[dict], label) -> list[dict]:
  out = {}
  for r in rows:
    out.setdefault((r["task"], label(r)), []).append(r)
  summary = []
  for (task, method), rs in out.items():
    valid = [r for r in rs if r["pgr_valid"] and r.get("pgr_ci95")]
    summary.append({
        "task": task, "method": method, "valid": len(valid),
        "median": float(np.median([r["pgr"] for r in valid])) if valid else None,
        "above": sum(r["pgr_ci95"][0] > 0 for r in valid),
        "below": sum(r["pgr_ci95"][1] < 0 for r in valid),
        "by_chance": 0.025 * len(valid)})
  return summary


def comparisons(rows: list[dict], label) -> list[dict]:
  """Each method against its reference (paired.reference_of: naive xent, or naive for a
  bootstrapped student, within the same variant), paired by (task, weak, strong)."""
  from w2s_jax import paired  # noqa: PLC0415  (paired imports nothing of this module)
  pgr = {(r["task"], r["weak"], r["strong"], label(r)): r["pgr"] for r in rows if r["pgr_valid"]}
  diffs = {}
  for r in rows:
    ref = paired.reference_of(r, label)
    key = (r["task"], r["weak"], r["strong"])
    if ref is not None and key + (label(r),) in pgr and key + (ref,) in pgr:
      diffs.setdefault((label(r), ref), []).append(pgr[key + (label(r),)] - pgr[key + (ref,)])
  out = []
  for (m, base), ds in diffs.items():
    wins, losses = sum(d > 0 for d in ds), sum(d < 0 for d in ds)
    out.append({"method": m, "against": base, "pairs": len(ds), "wins": wins, "losses": losses,
                "median_diff": float(np.median(ds)), "p": sign_test(wins, losses)})
  return out


def lines(rows: list[dict], label) -> list[str]:
  if not rows:
    return []
  out = ["", "across pairs (valid pairs; intervals that exclude 0, beside how many 95% intervals "
         "would by chance if every PGR were 0):"]
  for s in by_task(rows, label):
    med = f"{s['median']:+.2f}" if s["median"] is not None else "n/a"
    out.append(f"{s['task']} [{s['method']}]: {s['valid']} valid pairs, median PGR {med}, "
               f"{s['above']} above 0 and {s['below']} below (chance: {s['by_chance']:.1f} each)")
  for c in comparisons(rows, label):
    if c["pairs"]:
      out.append(f"{c['method']} - {c['against']}: higher PGR on {c['wins']} of {c['pairs']} "
                 f"pairs, lower on {c['losses']}, median difference {c['median_diff']:+.2f}, "
                 f"sign test p = {c['p']:.3f}")
  return out


def pooled_misfit(rs: list[dict]) -> dict:
  """Mean misfit and gain over the seeds (each its own weak model), and in how many runs the
  gain reaches the misfit (Charikar et al. 2024: always, for a convex strong class)."""
  mg = [r["misfit_gain"] for r in rs if r.get("misfit_gain")]
  if not mg:
    return {}
  out = {d: {k: float(np.mean([m[d][k] for m in mg])) for k in ("gain", "misfit")}
         for d in mg[0]}
  out["sq"]["gain_reaches_misfit"] = sum(m["sq"]["gain"] >= m["sq"]["misfit"] for m in mg)
  split = [r["agreement_split"] for r in rs if r.get("agreement_split")]

  def mean(k):  # rows store NaN as null: no row of that kind (a supervisor never wrong)
    v = [a[k] for a in split if a[k] is not None and np.isfinite(a[k])]
    return float(np.mean(v)) if v else float("nan")
  return {"misfit_gain": out,
          "agreement_split": {k: mean(k) for k in ("weak_right", "weak_wrong")}}


def _f(x) -> str:
  return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def misfit_lines(pool: list[dict], label) -> list[str]:
  """Per pooled student: mean gain and misfit (squared distance; KL where defined), how many
  runs have gain >= misfit, and its agreement with the supervisor where that was right / wrong."""
  lines = []
  for p in pool:
    mg, ag = p.get("misfit_gain"), p.get("agreement_split")
    if not mg:
      continue
    name = p["strong"] + (f" [{p['method']} {label(p)}]" if p.get("method")
                          else f" [{label(p)}]")
    kl = f"; KL gain {mg['kl']['gain']:+.3f}, misfit {mg['kl']['misfit']:.3f}" if "kl" in mg \
        else ""
    lines.append(f"{p['task']} {p['weak']} -> {name}: gain {mg['sq']['gain']:+.3f}, misfit "
                 f"{mg['sq']['misfit']:.3f} (gain >= misfit in {mg['sq']['gain_reaches_misfit']}"
                 f" of {p['seeds']} runs){kl}; agreement with the supervisor where it was right "
                 f"{_f(ag['weak_right'])}, wrong {_f(ag['weak_wrong'])}")
  if lines:
    lines = ["", "misfit and gain on test (Charikar et al. 2024; mean over seeds):"] + lines
  return lines
