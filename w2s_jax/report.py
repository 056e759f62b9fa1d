"""Where results go: training metrics (console + JSONL), results.json, the summary table."""
import json
import logging
import math

import numpy as np
from etils import epath

log = logging.getLogger("w2s_jax")

RESULT_FIELDS = ("weak_acc", "ceiling_acc", "student_acc", "pgr", "weak_auroc", "ceiling_auroc",
                 "student_auroc", "agreement", "n_test")


class MetricWriter:
  """Training metrics: a progress line on the console and one JSON line per log step."""

  def __init__(self, workdir: str):
    self.path = epath.Path(workdir) / "metrics.jsonl"

  def write(self, stage: str, metrics: dict, total_steps: int):
    step = metrics["step"]
    log.info("[%s] step %d/%d (%3.0f%%) loss %.4f acc %.3f lr %.2e %.0f ex/s", stage, step + 1,
             total_steps, 100 * (step + 1) / total_steps, metrics["loss"], metrics["accuracy"],
             metrics["lr"], metrics["examples_per_s"])
    with self.path.open("a") as f:
      f.write(json.dumps({"stage": stage, **metrics}) + "\n")


def _clean(x):
  """JSON has no NaN: write null."""
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if isinstance(x, dict):
    return {k: _clean(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_clean(v) for v in x]
  return x


def write_results(workdir: str, runs: list[dict], pooled: list[dict] = ()) -> str:
  """Merge `runs` into WORKDIR/results.json by run id (a sweep may span several invocations);
  `pooled` (this invocation's figures over seeds) replaces the previous ones."""
  path = epath.Path(workdir) / "results.json"
  rows = {}
  if path.exists():
    rows = {r["id"]: r for r in json.loads(path.read_text())["runs"]}
  rows.update({r["id"]: _clean(r) for r in runs})
  out = {"runs": list(rows.values())}
  if pooled:
    out["pooled"] = [_clean(p) for p in pooled]
  path.write_text(json.dumps(out, indent=1))
  return str(path)


def summary_table(runs: list[dict], pooled: list[dict] = ()) -> str:
  head = f"{'weak':>14} {'strong':>14} {'loss':>8} {'seed':>4} {'weak':>6} {'student':>7} " \
         f"{'ceiling':>7} {'PGR':>6} {'PGR 95% CI':>16} {'agree':>6}"
  lines = [head, "-" * len(head)]
  method = lambda r: r["loss"] + ("+gft" if r.get("gft") else "")  # noqa: E731
  for r in runs:
    ci = "[{:+.2f}, {:+.2f}]".format(*r["pgr_ci95"]) if all(
        v is not None and math.isfinite(v) for v in r["pgr_ci95"]) else "n/a"
    lines.append(f"{r['weak']:>14} {r['strong']:>14} {method(r):>8} {r['seed']:>4} "
                 f"{r['weak_acc']:6.3f} {r['student_acc']:7.3f} {r['ceiling_acc']:7.3f} "
                 f"{r['pgr']:6.2f} {ci:>16} {r['agreement']:6.3f}")
  for loss in dict.fromkeys(method(r) for r in runs):
    valid = [r["pgr"] for r in runs if method(r) == loss and r["pgr_valid"]]
    med = f"{np.median(valid):.2f}" if valid else "n/a (no run whose ceiling beats its weak model)"
    lines.append(f"median PGR [{loss}] over {len(valid)} valid runs: {med}")
  for p in pooled:
    if p["seeds"] > 1:
      lines.append(
          "pooled over {} seeds [{}]: weak {:.3f}, student {:.3f}, ceiling {:.3f}, PGR {:+.2f} "
          "[{:+.2f}, {:+.2f}] (95%: seeds and test examples resampled){}".format(
              p["seeds"], method(p), p["weak_acc"], p["student_acc"], p["ceiling_acc"],
              p["pgr"], *p["pgr_ci95"],
              "" if p["pgr_valid"] else "; ceiling <= weak: PGR means nothing"))
  return "\n".join(lines)
