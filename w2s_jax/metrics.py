"""Scores of a weak-to-strong run: accuracy, AUROC, agreement, PGR with a bootstrap interval,
misfit and gain."""
import numpy as np


def accuracy(probs, labels) -> float:
  return float(np.mean(np.argmax(probs, -1) == labels))


def log_softmax(logits) -> np.ndarray:
  z = np.asarray(logits, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def softmax(logits) -> np.ndarray:
  """Class probabilities [N, C] (float32) of logits."""
  return np.exp(log_softmax(logits)).astype(np.float32)


def cross_entropy(logits, targets) -> float:
  """Mean cross-entropy of logits against class ids [N] or probabilities [N, C]."""
  logp = log_softmax(logits)
  targets = np.asarray(targets)
  if targets.ndim == 1:
    return float(-np.mean(np.take_along_axis(logp, targets[:, None].astype(np.int64), -1)))
  return float(-np.mean(np.sum(targets * logp, -1)))


def margins(logits) -> np.ndarray:
  """[N, C] log-odds of each class against the rest, log p_c - log(1 - p_c), in float64 from
  the logits: what AUROC ranks (probabilities saturate to 0 and 1 in float32 and tie)."""
  logp = log_softmax(logits)
  if logp.shape[1] == 2:
    m = logp[:, 1] - logp[:, 0]
    return np.stack([-m, m], -1)
  out = np.empty_like(logp)
  for c in range(logp.shape[1]):
    rest = np.delete(logp, c, axis=1)
    top = rest.max(-1)
    out[:, c] = logp[:, c] - (top + np.log(np.exp(rest - top[:, None]).sum(-1)))
  return out


def auroc(logits, labels) -> float:
  """Binary: AUROC of the logit margin of class 1 (Mann-Whitney with tied ranks averaged).
  C > 2: macro one-vs-rest on each class's log-odds. NaN when a class is absent."""
  m, labels = margins(logits), np.asarray(labels)
  if m.shape[1] > 2:
    return float(np.mean([_auroc(m[:, c], labels == c) for c in range(m.shape[1])]))
  return _auroc(m[:, 1], labels)


def _auroc(score, labels) -> float:
  positive = labels.astype(bool)
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
  """[samples, K] mean accuracies of the K models of `runs` ([seeds, K, N] per-example
  correctness), each sample drawing seeds with replacement, then test examples with replacement
  (the same seeds and examples for every model: paired)."""
  rng = np.random.default_rng(seed)
  right = np.asarray(runs, np.float32)
  n_seeds, _, n = right.shape
  pick = rng.integers(0, n_seeds, size=(samples, n_seeds))
  idx = rng.integers(0, n, size=(samples, n))
  out = []
  for lo in range(0, samples, 100):  # [100, seeds, K, N] at a time
    sl = slice(lo, lo + 100)
    out.append(right[pick[sl, :, None], :, idx[sl, None, :]].mean((1, 2)))
  return np.concatenate(out)


def paired_interval(runs, statistic, *, samples=1000, seed=0, level=0.95) -> dict:
  """`statistic` (of a [..., K] array of mean accuracies: one value per row) on the pooled
  means of `runs` ([seeds, K, N] correctness of K models on the same seeds and test rows) and
  its bootstrap interval resampling seeds and test rows jointly for the K models: a paired
  comparison, e.g. PGR of one method minus PGR of another."""
  return paired_intervals(runs, {"x": statistic}, samples=samples, seed=seed, level=level)["x"]


def paired_intervals(runs, statistics: dict, *, samples=1000, seed=0, level=0.95) -> dict:
  """paired_interval for several statistics (name -> function) of the same runs, from one
  set of resamples (the resampling is the cost, not the statistics)."""
  right = np.asarray(runs, np.float32)
  means = right.mean((0, 2))[None]
  resampled = resampled_accuracies(right, samples=samples, seed=seed) if samples > 0 else None
  out = {}
  for name, statistic in statistics.items():
    value = float(statistic(means)[0])
    if resampled is None:
      out[name] = {"value": value, "ci95": [float("nan"), float("nan")]}
      continue
    values = statistic(resampled)
    values = values[np.isfinite(values)]
    ci = (np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if len(values)
          else [float("nan")] * 2)
    out[name] = {"value": value, "ci95": [float(ci[0]), float(ci[1])],
                 "seeds": int(right.shape[0])}
  return out


def pgr_of(acc, w: int = 0, s: int = 1, c: int = 2) -> np.ndarray:
  """PGR from columns of mean accuracies [..., K] (NaN where the gap is 0)."""
  gap = acc[..., c] - acc[..., w]
  return np.where(gap != 0, (acc[..., s] - acc[..., w]) / np.where(gap != 0, gap, 1), np.nan)


def pgr_interval_correct(runs, *, samples=1000, seed=0, level=0.95):
  """Bootstrap interval of PGR from per-example correctness: `runs` is one (weak, student,
  ceiling) triple of boolean [N] arrays per seed, on the same N test examples. Seeds and test
  examples are both resampled (each sample: seeds with replacement, then examples)."""
  if samples <= 0:
    return [float("nan"), float("nan")]
  values = pgr_of(resampled_accuracies(runs, samples=samples, seed=seed))
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


def misfit_gain(weak_logits, student_logits, labels) -> dict:
  """Charikar et al. 2024: for a convex strong class, gain >= misfit, with gain = d(weak, truth)
  - d(student, truth) and misfit = d(student, weak); d the mean squared distance between
  probability vectors ("sq"), or KL divergence ("kl": gain = KL(truth || weak) - KL(truth ||
  student), misfit = KL(student || weak)). Truth is one-hot."""
  lw, ls = log_softmax(weak_logits), log_softmax(student_logits)
  pw, ps = np.exp(lw), np.exp(ls)
  y = np.eye(pw.shape[1])[np.asarray(labels)]
  sq = lambda p, q: float(np.mean(np.sum((p - q) ** 2, -1)))  # noqa: E731
  truth_w = -np.take_along_axis(lw, np.asarray(labels)[:, None], -1)
  truth_s = -np.take_along_axis(ls, np.asarray(labels)[:, None], -1)
  return {"sq": {"gain": sq(pw, y) - sq(ps, y), "misfit": sq(ps, pw)},
          "kl": {"gain": float(np.mean(truth_w - truth_s)),
                 "misfit": float(np.mean(np.sum(ps * (ls - lw), -1)))}}


def misfit_gain_hard(weak_pred, student_pred, labels) -> dict:
  """misfit_gain for one-hot predictions (chess moves): d(p, q) = 2 [p != q], so gain is twice
  the drop in error and misfit twice the disagreement (KL is infinite for one-hot vectors)."""
  w, s, y = (np.asarray(a) for a in (weak_pred, student_pred, labels))
  return {"sq": {"gain": float(2 * (np.mean(w != y) - np.mean(s != y))),
                 "misfit": float(2 * np.mean(s != w))}}


def agreement_split(weak_pred, student_pred, labels) -> dict:
  """The student's agreement with its supervisor where the supervisor was right and where it
  was wrong (copying errors vs correcting them)."""
  w, s, y = (np.asarray(a) for a in (weak_pred, student_pred, labels))
  right = w == y
  mean = lambda m: float(np.mean((s == w)[m])) if m.any() else float("nan")  # noqa: E731
  return {"weak_right": mean(right), "weak_wrong": mean(~right)}


def score_run(weak_logits, student_logits, ceiling_logits, labels, *, samples=1000,
              seed=0) -> dict:
  weak_probs, student_probs, ceiling_probs = (softmax(x) for x in (
      weak_logits, student_logits, ceiling_logits))
  weak_acc, student_acc, ceiling_acc = (accuracy(p, labels) for p in
                                        (weak_probs, student_probs, ceiling_probs))
  return {
      "weak_acc": weak_acc, "ceiling_acc": ceiling_acc, "student_acc": student_acc,
      "pgr": pgr(weak_acc, student_acc, ceiling_acc),
      "pgr_ci95": pgr_interval(weak_probs, student_probs, ceiling_probs, labels,
                               samples=samples, seed=seed),
      # Papers exclude pairs whose ceiling does not beat the weak model: PGR is undefined there.
      "pgr_valid": bool(ceiling_acc > weak_acc),
      "weak_auroc": auroc(weak_logits, labels), "ceiling_auroc": auroc(ceiling_logits, labels),
      "student_auroc": auroc(student_logits, labels),
      "agreement": float(np.mean(np.argmax(student_probs, -1) == np.argmax(weak_probs, -1))),
      "agreement_split": agreement_split(weak_probs.argmax(-1), student_probs.argmax(-1), labels),
      "misfit_gain": misfit_gain(weak_logits, student_logits, labels),
      "n_test": int(len(labels)),
  }
