"""The report's text: number formats, the classification summary table, the baselines and the
development-slice table (a setting's own tables live in its module, w2s_jax/settings/)."""
import math

import numpy as np

from w2s_jax import paired, summary


def num(x, spec):
  return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else \
      format(x, spec)


def interval(ci):
  return "[{}, {}]".format(num(ci[0], "+.2f"), num(ci[1], "+.2f")) if ci else "n/a"


def method_label(r) -> str:
  """A row's loss, "+gft", "(oracle-selected)" for a student selected on ground truth, and its
  recipe's variant where its pool holds several."""
  return r["loss"] + ("+gft" if r.get("gft") else "") + (
      " (oracle-selected)" if r.get("oracle") else "") + (
      f" [{r['variant']}]" if r.get("variant") else "")


def columns(head: list[str], rows: list[list]) -> list[str]:
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
           num(r.get("prior"), ".3f"),
           num(r["weak_acc"], ".3f"), num(r["student_acc"], ".3f"), num(r["ceiling_acc"], ".3f"),
           num(r["pgr"], "+.2f") + ("" if r["pgr_valid"] else "*"), interval(r["pgr_ci95"]),
           num(r["agreement"], ".3f")] for r in runs]
  lines = columns(head, body)
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
             num(p["weak_acc"], ".3f"), num(p["student_acc"], ".3f"), num(p["ceiling_acc"], ".3f"),
             num(p["pgr"], "+.2f") + ("" if p["pgr_valid"] else "*"), interval(p["pgr_ci95"])]
            for p in multi]
    # The strong model with no fine-tuning in the student's column: the PGR it gets for free.
    seen = set()
    for b in baselines:  # one per pair and variant: its weak model and ceiling are the variant's
      key = (b["task"], b["weak"], b["strong"], b.get("variant", ""))
      if key not in seen and b["seeds"] > 1:
        seen.add(key)
        body.append([b["task"], b["weak"], b["strong"], "no fine-tune" + (
                     f" [{b['variant']}]" if b.get("variant") else ""), b["seeds"],
                     num(b["weak_acc"], ".3f"), num(b["no_finetune_acc"], ".3f"),
                     num(b["ceiling_acc"], ".3f"),
                     num(b["no_finetune_pgr"], "+.2f") + ("" if b["pgr_valid"] else "*"),
                     interval(b["no_finetune_pgr_ci95"])])
    lines += columns(head, body)
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
                     f"{interval(z['acc_ci95']).replace('+', '')}, AUROC {num(z['auroc'], '.3f')}; "
                     f"prior {r['prior']:.3f}")
  return lines


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
           num(p["dev"]["weak_acc"], ".3f"), num(p["dev"]["student_acc"], ".3f"),
           num(p["dev"]["ceiling_acc"], ".3f"),
           num(p["dev"]["pgr"], "+.2f") + ("" if p["dev"]["pgr_valid"] else "*"),
           interval(p["dev"]["pgr_ci95"])] for p in rows]
  return "\n".join(["development slice (pooled over seeds; for choosing designs, not for "
                    "reporting):"] + columns(head, body))
