"""The paper's figures as PNG files, drawn from a workdir's results (matplotlib, Agg backend).

  accuracy_<task>.png   test accuracy against strong-model parameters: one line per weak model
                        (its own accuracy, then its students'), the ceilings in black (Figure 3)
  pgr_vs_gap.png        PGR against the weak-ceiling gap, one colour per loss
  chess_ladder.png      per rung: weak, naive and bootstrapped students, ceiling, zero-shot
  curves.png            training loss per stage (weak, ceilings, students)
Error bars are 95% intervals resampling seeds and test examples (results.json "pooled").
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from etils import epath  # noqa: E402

from w2s_jax.paired import method_of  # noqa: E402
from w2s_jax.tables import method_label  # noqa: E402


def _method(p: dict) -> str:
  """A student's label: its loss and variant, after its ladder method (naive | bootstrap)."""
  return method_of(p, method_label)

MAX_CURVES = 12  # per panel: more lines than this cannot be told apart


def _err(p, role):
  """matplotlib's yerr of one pooled accuracy (None without an interval)."""
  lo, hi = (p.get("acc_ci95") or {}).get(role, [None, None])
  v = p[f"{role}_acc"]
  return [[v - lo], [hi - v]] if lo is not None else None


def _errs(ps, role):
  errs = [_err(p, role) for p in ps]
  return None if any(e is None for e in errs) else [[e[0][0] for e in errs],
                                                     [e[1][0] for e in errs]]


def _save(fig, path, dpi: int):
  fig.tight_layout()
  fig.savefig(str(path), dpi=dpi)
  plt.close(fig)
  return path


def accuracy_figures(pool: list[dict], out: epath.Path) -> list:
  """One PNG per task; one panel per student loss."""
  paths = []
  for task in dict.fromkeys(p["task"] for p in pool):
    ps = [p for p in pool if p["task"] == task and p.get("params")]
    methods = list(dict.fromkeys(_method(p) for p in ps))
    if not methods:
      continue
    fig, axes = plt.subplots(1, len(methods), figsize=(5.5 * len(methods), 4.2), squeeze=False,
                             sharey=True)
    for ax, method in zip(axes[0], methods):
      sel = [p for p in ps if _method(p) == method]
      ceilings = sorted({(p["params"]["strong"], p["strong"], p["ceiling_acc"]) for p in sel})
      ax.plot([c[0] for c in ceilings], [c[2] for c in ceilings], "k-", marker="s",
              label="ceiling (strong on ground truth)")
      weaks = list(dict.fromkeys(p["weak"] for p in sel))
      for i, weak in enumerate(weaks):
        ws = sorted((p for p in sel if p["weak"] == weak), key=lambda p: p["params"]["strong"])
        color = plt.cm.tab10(i % 10)
        ax.errorbar([ws[0]["params"]["weak"]], [ws[0]["weak_acc"]], yerr=_err(ws[0], "weak"),
                    fmt="o", color=color, mfc="white")
        xs = [ws[0]["params"]["weak"]] + [p["params"]["strong"] for p in ws]
        ys = [ws[0]["weak_acc"]] + [p["student_acc"] for p in ws]
        ax.plot(xs, ys, "-", color=color,
                label=f"{weak}: weak (hollow) -> its students (filled)")
        for p in ws:
          ax.errorbar([p["params"]["strong"]], [p["student_acc"]], yerr=_err(p, "student"),
                      fmt="o", color=color, capsize=3)
      # Each strong model's zero-shot score (no training), where it has one: the baseline that
      # tells eliciting a skill from teaching it.
      zero = {c[0]: (p.get("zero_shot") or {}).get(c[1], {}) for c in ceilings for p in sel
              if p["strong"] == c[1]}
      zs = sorted((x, z["acc"]) for x, z in zero.items() if "acc" in z)
      if zs:
        ax.plot(*zip(*zs), "x", color="grey", ms=8, mew=2, label="zero-shot (no training)")
      prior = next((p.get("prior") for p in sel if p.get("prior")), None)
      if prior:
        ax.axhline(prior, color="grey", ls=":", label=f"majority class ({prior:.2f})")
      ax.set_xscale("log")
      ax.set_xlabel("model parameters (log scale)")
      ax.set_title(f"{task}: students trained with {method}")
      ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    paths.append(_save(fig, out / f"accuracy_{task}.png", 110))
  return paths


def pgr_figure(pool: list[dict], out: epath.Path):
  """PGR against the gap, for pools whose ceiling beats the weak model (PGR means nothing
  elsewhere); the y-axis is clipped to [-2, 3] so one wide interval cannot flatten the rest."""
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  valid = [p for p in pool if p["pgr_valid"] and p["pgr"] is not None]
  for i, method in enumerate(dict.fromkeys(_method(p) for p in valid)):
    s = [p for p in valid if _method(p) == method]
    lo = [p["pgr"] - p["pgr_ci95"][0] if p["pgr_ci95"][0] is not None else 0 for p in s]
    hi = [p["pgr_ci95"][1] - p["pgr"] if p["pgr_ci95"][1] is not None else 0 for p in s]
    ax.errorbar([p["ceiling_acc"] - p["weak_acc"] for p in s], [p["pgr"] for p in s],
                yerr=[lo, hi], fmt="o", color=plt.cm.tab10(i), capsize=3, label=method)
  ax.axhline(0, color="grey", lw=0.8)
  ax.axhline(1, color="grey", lw=0.8, ls="--")
  ax.set_ylim(max(-2, min([-0.25] + [p["pgr"] for p in valid]) - 0.25),
              min(3, max([1.25] + [p["pgr"] for p in valid]) + 0.25))
  left_out = len(pool) - len(valid)
  ax.set_xlabel("ceiling accuracy - weak accuracy (test)")
  ax.set_ylabel("PGR (performance gap recovered)")
  ax.set_title("PGR against the weak-strong gap (95% intervals)" + (
      f"\n{left_out} pooled runs with ceiling <= weak left out" if left_out else ""), fontsize=10)
  ax.grid(alpha=0.3)
  if valid:
    ax.legend(fontsize=8)
  return _save(fig, out / "pgr_vs_gap.png", 110)


def misfit_figure(runs: list[dict], out: epath.Path):
  """Gain against misfit per run (squared distance between probability vectors on test), with
  the line gain = misfit: Charikar et al. 2024 prove gain >= misfit for a convex strong class
  (a linear probe on fixed features), so points below it are students outside that regime."""
  pts = [r for r in runs if r.get("misfit_gain")]
  fig, ax = plt.subplots(figsize=(5.5, 4.5))
  label = lambda r: (f"{r['method']} " if r.get("method") else "") + method_label(r)  # noqa: E731
  for i, m in enumerate(dict.fromkeys(label(r) for r in pts)):
    s = [r for r in pts if label(r) == m]
    ax.scatter([r["misfit_gain"]["sq"]["misfit"] for r in s],
               [r["misfit_gain"]["sq"]["gain"] for r in s], color=plt.cm.tab10(i % 10), s=18,
               label=m)
  top = max([0.05] + [max(r["misfit_gain"]["sq"]["misfit"], r["misfit_gain"]["sq"]["gain"])
                      for r in pts])
  ax.plot([0, top], [0, top], color="grey", ls="--", lw=0.8, label="gain = misfit")
  ax.axhline(0, color="grey", lw=0.6)
  ax.set_xlabel("misfit: d(student, supervisor)")
  ax.set_ylabel("gain: d(supervisor, truth) - d(student, truth)")
  ax.set_title("Gain against misfit per run (mean squared distance, test)", fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return _save(fig, out / "gain_vs_misfit.png", 110)


def chess_figure(pool: list[dict], out: epath.Path):
  losses = list(dict.fromkeys(method_label(p) for p in pool))  # and variants
  fig, axes = plt.subplots(1, len(losses), figsize=(6.5 * len(losses), 4.4), squeeze=False)
  for ax, loss in zip(axes[0], losses):
    sel = [p for p in pool if method_label(p) == loss]
    zero = sel[0].get("zero_shot") or {}
    rungs = sorted({p["rung"] for p in sel})
    names = {p["rung"]: p["strong"] for p in sel}
    for method, color, dx in (("naive", "tab:blue", -0.08), ("bootstrap", "tab:orange", 0.08)):
      s = sorted((p for p in sel if p["method"] == method), key=lambda p: p["rung"])
      ax.errorbar([p["rung"] + dx for p in s], [p["student_acc"] for p in s],
                  yerr=_errs(s, "student"), fmt="o-", color=color, capsize=3,
                  label=f"{method} student")
    ceil = sorted({(p["rung"], p["ceiling_acc"]) for p in sel if p["method"] == "naive"})
    ax.plot([c[0] for c in ceil], [c[1] for c in ceil], "ks-", label="ceiling")
    ax.axhline(sel[0]["weak_acc"], color="tab:green", ls="--", label="weak supervisor (M1)")
    zs = [(r, zero[names[r]]["masked"]) for r in rungs if names[r] in zero]
    if zs:
      ax.plot([z[0] for z in zs], [z[1] for z in zs], "^:", color="tab:purple",
              label="zero-shot (legal moves only)")
    chance = sel[0].get("chance")
    if chance:
      ax.axhline(chance, color="grey", ls=":", label=f"random legal move ({chance:.3f})")
    ax.set_xticks(rungs, [names[r] for r in rungs], fontsize=8)
    ax.set_xlabel("strong rung")
    ax.set_ylabel("test accuracy (first move exact)")
    ax.set_title(f"chess ladder, students trained with {loss}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return _save(fig, out / "chess_ladder.png", 110)


def curves_figure(runs: list[dict], store, out: epath.Path):
  """Per role (weak, ceilings, students): training loss, and where stages were evaluated during
  training (curves_every, early stopping), test accuracy against the step with the kept step
  marked."""
  roles = ("weak", "ceiling", "student")
  stages = {role: [] for role in roles}
  for r in runs:
    for role in roles:
      key = r["stage_keys"].get(role)  # a controlled supervisor trains nothing
      seen = [k for k, _ in stages[role]]
      if key is not None and key not in seen and len(seen) < MAX_CURVES:
        label = (f"{r['weak']}->{r['strong']} {r['loss']}" if role == "student" else
                 r["weak" if role == "weak" else "strong"]) + f" s{r['seed']}"
        stages[role].append((key, label))
  m = {(role, k): store.metrics("train", k) for role in roles for k, _ in stages[role]}
  with_evals = any(v.get("evals") for v in m.values())
  fig, axes = plt.subplots(2 if with_evals else 1, 3, figsize=(15, 7.5 if with_evals else 4),
                           squeeze=False)
  for j, role in enumerate(roles):
    ax = axes[0][j]
    for key, label in stages[role]:
      history = m[role, key].get("history") or []
      ax.plot([h["step"] for h in history], [h["loss"] for h in history], label=label)
    ax.set_title(f"{role} training loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    if stages[role]:
      ax.legend(fontsize=7)
    if not with_evals:
      continue
    ax = axes[1][j]
    for key, label in stages[role]:
      evals = m[role, key].get("evals") or []
      if not evals:
        continue
      line, = ax.plot([e["step"] for e in evals], [e["test_gt_acc"] for e in evals], label=label)
      best = m[role, key].get("best_step", -1)
      kept = [e for e in evals if e["step"] == best]
      if kept:
        ax.plot([best], [kept[0]["test_gt_acc"]], "*", ms=12, color=line.get_color())
    ax.set_title(f"{role}: test accuracy during training (* kept step)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
  return _save(fig, out / "curves.png", 100)


def shared_figures(pool: list, runs: list, store, out: epath.Path) -> list:
  """The figures of every setting's rows: PGR against the gap, the curves, misfit."""
  paths = [pgr_figure(pool, out)] if pool else []
  if runs:
    paths.append(curves_figure(runs, store, out))
  if any(r.get("misfit_gain") for r in runs):
    paths.append(misfit_figure(runs, out))
  return paths
