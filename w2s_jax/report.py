"""The report of a whole workdir: every setting's tables, the figures (PNG) and report.md.

  python -m w2s_jax.report WORKDIR     re-render the tables, figures (PNG) and WORKDIR/report.md
  python -m w2s_jax.report WORKDIR --dev   the scores on the development slice (design choices)
"""
import json
import logging
import sys

from etils import epath

from w2s_jax import files, paired, settings, stages, summary
from w2s_jax.results import rebuild
from w2s_jax.tables import dev_table, method_label

log = logging.getLogger("w2s_jax")


def _of(setting, entries: list) -> list:
  """The rows (or pooled entries) of one setting."""
  return [e for e in entries if e.get("setting") == setting.ROWS]


def tables(results: dict) -> str:
  """Each setting's tables from its own rows, then what compares across them."""
  runs, pool = results["runs"], results.get("pooled", [])
  pair = results.get("paired") or {"methods": [], "baselines": []}
  parts = []
  for setting in settings.every():
    parts += setting.tables(_of(setting, runs), _of(setting, pool),
                            _of(setting, pair["baselines"]))
  extra = paired.lines(pair) + summary.misfit_lines(pool, method_label)
  if extra:
    parts.append("\n".join(extra).strip("\n"))
  return "\n\n".join(parts)


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
  out, pool, runs = epath.Path(workdir), results.get("pooled", []), results["runs"]
  pngs = []
  for setting in settings.every():  # each setting's own figures, then the shared ones
    pngs += setting.figures(_of(setting, pool), _of(setting, runs), out)
  pngs += figures.shared_figures(pool, runs, store, out)
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
