"""What a table of many pooled intervals supports: summaries across tasks and pairs.

  per (task, method)   valid pairs, median PGR, intervals above and below 0, and how many of
                       each chance alone would give (2.5% of the valid pairs per side, for 95%
                       intervals and a true PGR of 0)
  per comparison       each method against naive xent (logconf - xent, xent+gft - xent), over the
                       (task, weak, strong) pairs where both are valid: how often its PGR is
                       higher, the median difference, and an exact two-sided sign test

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
  """Each method against naive xent (else the first method seen), paired by (task, weak,
  strong)."""
  pgr = {(r["task"], r["weak"], r["strong"], label(r)): r["pgr"] for r in rows if r["pgr_valid"]}
  methods = list(dict.fromkeys(label(r) for r in rows))
  base = "xent" if "xent" in methods else methods[0]
  out = []
  for m in [m for m in methods if m != base]:
    diffs = [pgr[k[:3] + (m,)] - v for k, v in pgr.items()
             if k[3] == base and k[:3] + (m,) in pgr]
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    out.append({"method": m, "against": base, "pairs": len(diffs), "wins": wins,
                "losses": losses, "median_diff": float(np.median(diffs)) if diffs else None,
                "p": sign_test(wins, losses)})
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
