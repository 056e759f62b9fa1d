"""Scores of a weak-to-strong run: accuracy, AUROC, agreement, PGR with a bootstrap interval."""
import numpy as np


def accuracy(probs, labels) -> float:
  return float(np.mean(np.argmax(probs, -1) == labels))


def auroc(probs, labels) -> float:
  """Binary: AUROC of p[:, 1] (Mann-Whitney with tied ranks averaged). C > 2: macro one-vs-rest.
  NaN when a class is absent."""
  probs, labels = np.asarray(probs), np.asarray(labels)
  if probs.shape[1] > 2:
    return float(np.mean([auroc(np.stack([1 - probs[:, c], probs[:, c]], -1), labels == c)
                          for c in range(probs.shape[1])]))
  score, positive = probs[:, 1], labels.astype(bool)
  n_pos, n_neg = positive.sum(), (~positive).sum()
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  order = np.argsort(score, kind="mergesort")
  ranks = np.empty(len(score), np.float64)
  sorted_scores = score[order]
  # Average ranks over ties.
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  avg = first + (counts + 1) / 2.0
  ranks[order] = np.repeat(avg, counts)
  return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def accuracy_interval(correct, *, samples: int = 1000, seed: int = 0, level=0.95) -> list:
  """Bootstrap interval of an accuracy over its examples (per-example correctness [N])."""
  correct = np.asarray(correct, np.float32)
  rng = np.random.default_rng(seed)
  means = correct[rng.integers(0, len(correct), size=(samples, len(correct)))].mean(1)
  return [float(q) for q in np.quantile(means, [(1 - level) / 2, (1 + level) / 2])]


def pgr(weak_acc, student_acc, ceiling_acc) -> float:
  """Performance gap recovered: (student - weak) / (ceiling - weak); NaN when the gap is 0."""
  gap = ceiling_acc - weak_acc
  return float((student_acc - weak_acc) / gap) if gap != 0 else float("nan")


def pgr_interval(weak_probs, student_probs, ceiling_probs, labels, *, samples=1000, seed=0,
                 level=0.95):
  """Bootstrap interval of PGR over test examples (resampled jointly for the three models)."""
  if samples <= 0:
    return [float("nan"), float("nan")]
  right = [np.argmax(p, -1) == labels for p in (weak_probs, student_probs, ceiling_probs)]
  return pgr_interval_correct([right], samples=samples, seed=seed, level=level)


def resampled_accuracies(runs, *, samples=1000, seed=0) -> np.ndarray:
  """[samples, 3] mean accuracies of (weak, student, ceiling), each sample drawing seeds with
  replacement, then test examples with replacement (the same examples for the three models)."""
  rng = np.random.default_rng(seed)
  right = np.asarray(runs, np.float32)  # [seeds, 3, N]
  n_seeds, _, n = right.shape
  pick = rng.integers(0, n_seeds, size=(samples, n_seeds))
  idx = rng.integers(0, n, size=(samples, n))
  return right[pick[:, :, None], :, idx[:, None, :]].mean((1, 2))


def pgr_interval_correct(runs, *, samples=1000, seed=0, level=0.95):
  """Bootstrap interval of PGR from per-example correctness: `runs` is one (weak, student,
  ceiling) triple of boolean [N] arrays per seed, on the same N test examples. Seeds and test
  examples are both resampled (each sample: seeds with replacement, then examples)."""
  if samples <= 0:
    return [float("nan"), float("nan")]
  acc = resampled_accuracies(runs, samples=samples, seed=seed)
  w, s, c = acc[:, 0], acc[:, 1], acc[:, 2]
  gap = c - w
  values = np.where(gap != 0, (s - w) / np.where(gap != 0, gap, 1), np.nan)
  values = values[np.isfinite(values)]
  if not len(values):
    return [float("nan"), float("nan")]
  lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
  return [float(lo), float(hi)]


def pooled_pgr(runs, *, samples=1000, seed=0) -> dict:
  """Over seeds: mean weak, student and ceiling accuracy, the PGR of those means, and its 95%
  interval resampling seeds and test examples. `runs`: one (weak, student, ceiling) triple of
  boolean [N] correctness arrays per seed, on the same test examples."""
  acc = np.asarray(runs, np.float32).mean((0, 2))
  out = {"seeds": len(runs), "weak_acc": float(acc[0]), "student_acc": float(acc[1]),
         "ceiling_acc": float(acc[2]), "pgr": pgr(*acc), "pgr_valid": bool(acc[2] > acc[0]),
         "pgr_ci95": pgr_interval_correct(runs, samples=samples, seed=seed)}
  if samples > 0:
    lo, hi = np.quantile(resampled_accuracies(runs, samples=samples, seed=seed), [0.025, 0.975], 0)
    out["acc_ci95"] = {n: [float(lo[i]), float(hi[i])]
                       for i, n in enumerate(("weak", "student", "ceiling"))}
  return out


def score_run(weak_probs, student_probs, ceiling_probs, labels, *, samples=1000, seed=0) -> dict:
  weak_acc, student_acc, ceiling_acc = (accuracy(p, labels) for p in
                                        (weak_probs, student_probs, ceiling_probs))
  return {
      "weak_acc": weak_acc, "ceiling_acc": ceiling_acc, "student_acc": student_acc,
      "pgr": pgr(weak_acc, student_acc, ceiling_acc),
      "pgr_ci95": pgr_interval(weak_probs, student_probs, ceiling_probs, labels,
                               samples=samples, seed=seed),
      # Papers exclude pairs whose ceiling does not beat the weak model: PGR is undefined there.
      "pgr_valid": bool(ceiling_acc > weak_acc),
      "weak_auroc": auroc(weak_probs, labels), "ceiling_auroc": auroc(ceiling_probs, labels),
      "student_auroc": auroc(student_probs, labels),
      "agreement": float(np.mean(np.argmax(student_probs, -1) == np.argmax(weak_probs, -1))),
      "n_test": int(len(labels)),
  }
