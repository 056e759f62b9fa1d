"""Weak-to-strong methods beyond the paper's losses: plug-ins in three registries, each entry a
plain function, each configured under `methods.*` (docs/methods.md has their sources).

  FILTERS      (x, y, hp) -> (labels, keep)   the weak labels y [N, C] of B rebuilt or thinned
                                              out by a probe on the STRONG model's pretrained
                                              features x [N, d] (EleutherAI/w2s); the student
                                              trains on the kept rows' labels
  ENSEMBLES    several weak models in place of one: `rows` cuts each member's training rows
               from A, `combine` merges their soft labels (bagging; data specialists)
  SUPERVISORS  controlled supervisors that label from the ground truth with a chosen accuracy
               or a systematic error (EleutherAI/weak-to-strong's quirky experiments): labellers
               of any split, so that they have a test score, a PGR and students of their own

A method's student trains with `methods.loss` on B's student rows and is paired against naive
xent on the same seed's weak labels (paired.reference_of). Filters and ensembles keep the weak
model as the row's `weak` (PGR stays measured from the single weak model, the supervision a user
pays for); a controlled supervisor IS the row's weak model.
"""
import hashlib

import numpy as np
from scipy import optimize
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from w2s_jax import metrics, models
from w2s_jax.errors import ConfigError
from w2s_jax.graph import Output, Stage


# ---------------------------------------------------------------------------- label filters
def neighbours(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
  """[N, k] indices of each row's k nearest OTHER rows by Euclidean distance (a row is not its
  own neighbour), nearest first; ties go to the lower index."""
  x = np.asarray(x, np.float64)
  sq = (x * x).sum(1)
  out = np.empty((len(x), k), np.int64)
  for i in range(0, len(x), chunk):
    d = sq[i:i + chunk, None] - 2.0 * x[i:i + chunk] @ x.T + sq[None]
    d[np.arange(len(d)), np.arange(i, i + len(d))] = np.inf
    out[i:i + chunk] = np.argsort(d, axis=1, kind="stable")[:, :k]
  return out


def disagreement(p: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Half the L1 distance between probability rows: |p1 - y1| for two classes."""
  return 0.5 * np.abs(p - y).sum(-1)


def drop_most(score: np.ndarray, share: float) -> np.ndarray:
  """Keep mask without the int(share * N) highest scores (on a tie the earlier row goes)."""
  keep = np.ones(len(score), bool)
  n = int(share * len(score))
  if n:
    keep[np.argsort(-score, kind="stable")[:n]] = False
  return keep


def knn_labels(x, y, k: int) -> np.ndarray:
  """Each row's label as the mean of its k nearest neighbours' labels."""
  return y[neighbours(x, k)].mean(1)


def logreg_labels(x, y, l2: float) -> np.ndarray:
  """A multinomial logistic regression on standardised features fitted to the soft labels (mean
  cross-entropy + l2 * |W|^2, L-BFGS), predicting the rows it was fitted on."""
  x = np.asarray(x, np.float64)
  x = (x - x.mean(0)) / (x.std(0) + 1e-6)
  n, d = x.shape
  c = y.shape[1]

  def f(theta):
    w, b = theta[:d * c].reshape(d, c), theta[d * c:]
    logp = metrics.log_softmax(x @ w + b)
    g = (np.exp(logp) - y) / n
    return (-(y * logp).sum() / n + l2 * (w * w).sum(),
            np.concatenate([(x.T @ g + 2 * l2 * w).ravel(), g.sum(0)]))
  theta = optimize.minimize(f, np.zeros(d * c + c), jac=True, method="L-BFGS-B",
                            options={"maxiter": 500}).x
  return np.exp(metrics.log_softmax(x @ theta[:d * c].reshape(d, c) + theta[d * c:]))


def topo_component(x, y, k: int) -> np.ndarray:
  """TopoCC (Wu et al. 2020, as EleutherAI/w2s's `topo_cc`): in the directed k-nearest-
  neighbour graph, each class's (by hard label) largest strongly connected component of
  same-class edges; mask of the rows in one."""
  nb, hard = neighbours(x, k), y.argmax(-1)
  keep = np.zeros(len(x), bool)
  for cls in np.unique(hard):
    rows = np.flatnonzero(hard == cls)
    src = np.repeat(rows, k)
    dst = nb[rows].ravel()
    same = hard[dst] == cls
    adj = csr_matrix((np.ones(same.sum()), (src[same], dst[same])), shape=(len(x), len(x)))
    _, comp = connected_components(adj, connection="strong")
    sizes = np.bincount(comp[rows])
    keep[rows[comp[rows] == sizes.argmax()]] = True
  return keep


def knn_relabel(x, y, hp):
  """Each row's label becomes the mean of its `knn_k` nearest neighbours' labels."""
  return knn_labels(x, y, hp["knn_k"]), np.ones(len(y), bool)


def knn_filter(x, y, hp):
  """Drops the `contamination` share of rows whose label is farthest from their `knn_k`
  nearest neighbours' mean label."""
  return y, drop_most(disagreement(knn_labels(x, y, hp["knn_k"]), y), hp["contamination"])


def logreg_relabel(x, y, hp):
  """Each row's label becomes a logistic probe's prediction, the probe fitted to all of B's
  labels (penalty `logreg_l2`)."""
  return logreg_labels(x, y, hp["logreg_l2"]), np.ones(len(y), bool)


def logreg_filter(x, y, hp):
  """Drops the `contamination` share of rows whose label is farthest from that probe's
  prediction."""
  p = logreg_labels(x, y, hp["logreg_l2"])
  return y, drop_most(disagreement(p, y), hp["contamination"])


def topo_filter(x, y, hp):
  """TopoFilter: drops the rows outside their class's largest strongly connected component of
  the `topo_k_cc`-nearest-neighbour graph, then those farthest from their `topo_k_zeta`
  neighbours' mean label until `contamination` of the rows are gone (the components may
  remove more)."""
  comp = np.flatnonzero(topo_component(x, y, hp["topo_k_cc"]))
  far = disagreement(knn_labels(x[comp], y[comp], hp["topo_k_zeta"]), y[comp])
  n = max(int(hp["contamination"] * len(y)) - (len(y) - len(comp)), 0)
  keep = np.zeros(len(y), bool)
  keep[comp] = True
  keep[comp[np.argsort(-far, kind="stable")[:n]]] = False
  return y, keep


FILTERS = {f.__name__: f for f in (knn_relabel, knn_filter, logreg_relabel, logreg_filter,
                                    topo_filter)}
# The methods.* keys each filter reads: what its stage key holds.
FILTER_KEYS = {"knn_relabel": ("knn_k",), "knn_filter": ("knn_k", "contamination"),
               "logreg_relabel": ("logreg_l2",), "logreg_filter": ("logreg_l2", "contamination"),
               "topo_filter": ("topo_k_cc", "topo_k_zeta", "contamination")}


def label_quality(y_old, y_new, keep, truth) -> dict:
  """How the kept labels compare with the ground truth: precision (share of kept rows whose new
  hard label is right), recall (share of the rows the weak model got right that are kept, with
  a right label), the weak labels' own accuracy, and the share kept."""
  right_old = y_old.argmax(-1) == truth
  right_new = y_new.argmax(-1) == truth
  return {"kept": float(keep.mean()), "weak_acc": float(right_old.mean()),
          "precision": float(right_new[keep].mean()) if keep.any() else float("nan"),
          "recall": float((right_new & keep & right_old).sum() / max(right_old.sum(), 1)),
          "changed": float((y_old.argmax(-1) != y_new.argmax(-1))[keep].mean())
          if keep.any() else 0.0}


# -------------------------------------------------------------------------------- ensembles
def bag_rows(rows: np.ndarray, n: int, seed: int | None, data_seed: int) -> list[np.ndarray]:
  """n bootstrap resamples (with replacement, as many rows as `rows`) of a seed's A (seed None:
  one draw for every seed)."""
  rng = np.random.default_rng([data_seed, 11] + ([] if seed is None else [seed]))
  return [rows[rng.integers(0, len(rows), len(rows))] for _ in range(n)]


def token_sketch(ds, dims: int = 256) -> np.ndarray:
  """Rows as L2-normalised bag-of-token counts folded into `dims` buckets (the multiplier is
  odd, so for a power-of-2 `dims` a bucket is a permutation of id mod dims; id 0, the padding,
  is not counted): what specialists are routed by, known before any model runs."""
  tok = ds.tokens.reshape(len(ds), -1).astype(np.int64)
  out = np.zeros((len(ds), dims))
  np.add.at(out, (np.repeat(np.arange(len(ds)), tok.shape[1]), (tok * 2654435761 % dims).ravel()),
            (tok > 0).ravel())
  return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 50) -> np.ndarray:
  """k centroids of x (k-means++ start, Lloyd steps)."""
  rng = np.random.default_rng([seed, 13])
  cent = [x[rng.integers(len(x))]]
  for _ in range(k - 1):
    d = ((x[:, None] - np.asarray(cent)[None]) ** 2).sum(-1).min(1)
    cent.append(x[rng.choice(len(x), p=d / d.sum())])
  cent = np.asarray(cent)
  for _ in range(iters):
    near = route(x, cent)
    cent = np.asarray([x[near == j].mean(0) if (near == j).any() else cent[j] for j in range(k)])
  return cent


def route(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
  return ((x[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)


def combine(probs: list[np.ndarray], how: str, routes: np.ndarray | None = None) -> np.ndarray:
  """Members' soft labels [K][N, C] as one: their mean, their vote shares (each member's hard
  label counted once), or each row's own specialist's (`routes` [N])."""
  p = np.stack(probs)
  if routes is not None:
    return p[routes, np.arange(p.shape[1])]
  if how == "vote":
    return np.eye(p.shape[-1])[p.argmax(-1)].mean(0)
  return p.mean(0)


ENSEMBLES = {
    "bagged": "`n_supervisors` weak models, each on a bootstrap resample of A; their labels "
              "merged by `combine` (mean or vote)",
    "specialists": "`n_supervisors` weak models, each on one k-means cluster of A's bags of "
                   "token ids (folded into 256 buckets); a row is labelled by its nearest "
                   "cluster's model",
}


# ---------------------------------------------------------------------- controlled supervisors
def flip(truth: np.ndarray, wrong: np.ndarray, num_classes: int, rng) -> np.ndarray:
  """One-hot labels: the truth, moved to another class (uniformly) on the rows `wrong`."""
  lab = truth.copy()
  lab[wrong] = (truth[wrong] + rng.integers(1, num_classes, wrong.sum())) % num_classes
  return np.eye(num_classes)[lab]


def target_acc_labels(ds, num_classes, hp, rng) -> np.ndarray:
  """Right on exactly round(target_acc * N) rows drawn at random, wrong on the others."""
  n = len(ds)
  wrong = np.ones(n, bool)
  wrong[rng.permutation(n)[:round(hp["target_acc"] * n)]] = False
  return flip(ds.labels, wrong, num_classes, rng)


def quirky_labels(ds, num_classes, hp, rng) -> np.ndarray:
  """Systematically wrong: the truth, flipped on the `quirk_share` of rows with the most tokens
  (a feature of the input, not of the label), right elsewhere."""
  length = ds.lengths.reshape(len(ds), -1).sum(1)
  wrong = np.zeros(len(ds), bool)
  wrong[np.argsort(-length, kind="stable")[:round(hp["quirk_share"] * len(ds))]] = True
  return flip(ds.labels, wrong, num_classes, rng)


SUPERVISORS = {"target_acc": target_acc_labels, "quirky": quirky_labels}


def supervisor_name(name: str, hp: dict) -> str:
  return (f"target_acc={hp['target_acc']:g}" if name == "target_acc" else
          f"quirky(longest {hp['quirk_share']:g})")


# ------------------------------------------------------------------------------- the stages
def _scored(probs: np.ndarray, truth: np.ndarray, extra: dict | None = None) -> Output:
  """A labelling stage's output, shaped as a predict stage's: what rows and reports read."""
  logits = np.log(np.clip(probs, 1e-7, 1.0)).astype(np.float32)
  correct = probs.argmax(-1) == truth
  return Output(arrays={"logits": logits, "probs": probs.astype(np.float32), "correct": correct,
                        "labels": truth, **(extra or {})},
                metrics={"acc": float(correct.mean()), "auroc": metrics.auroc(logits, truth)})


class Methods:
  """The method students of one config's seed, added to a classification Builder's graph."""

  def __init__(self, builder):
    self.b, self.cfg = builder, builder.cfg
    self.hp = self.cfg.methods.to_dict()

  def supervisor(self, name: str, seed: int, split: str) -> Stage:
    """A controlled supervisor's labels of a split (as a predict stage)."""
    b, hp = self.b, self.hp
    keep = {k: hp[k] for k in (("target_acc",) if name == "target_acc" else ("quirk_share",))}
    ds = b.data.sets(seed)[split]
    s = {"supervisor": name, "hp": keep, "data": b.data.keys(seed)[split], "seed": seed,
         "num_classes": b.data.num_classes}

    def run():
      digest = int(hashlib.sha256(ds.key().encode()).hexdigest()[:8], 16)
      rng = np.random.default_rng([seed, 17, digest])
      return _scored(SUPERVISORS[name](ds, b.data.num_classes, hp, rng), ds.labels)
    return b.graph.add(Stage("predict", s, f"supervise:{supervisor_name(name, hp)}:s{seed}:{split}",
                             run, cost=f"{len(ds)} rows", seed=seed,
                             seeded=b.data.seeded(seed)))

  def filtered(self, name: str, seed: int, labels: Stage, label: str) -> Stage:
    """A filter's labels of B (`labels`: a labelling of "b"), read on the strong model's
    pretrained features of B; arrays as a predict stage's plus `keep`."""
    b, hp = self.b, self.hp
    strong = b.cfg.strong
    feats = b.features(strong, seed, "b")
    used = {k: hp[k] for k in FILTER_KEYS[name]}
    s = {"filter": name, "hp": used, "labels": labels.key, "features": feats.key,
         "depth": b.model_cfg(strong).n_layers}

    def run():
      y = b.rt.store.arrays("predict", labels.key)["probs"].astype(np.float64)
      truth = b.data.sets(seed)["b"].labels
      new, keep = FILTERS[name](b.probe_inputs(strong, feats, seed, "b"), y, hp)
      out = _scored(new, truth, {"keep": keep})
      out.metrics.update(label_quality(y, new, keep, truth))
      return out
    return b.graph.add(Stage("predict", s, f"filter:{name}:{label}", run, (labels, feats),
                             cost=f"{len(b.data.sets(seed)['b'])} rows", seed=seed))

  def ensemble(self, kind: str, seed: int, splits: list[str]) -> dict:
    """split -> the ensemble's labels of it: `methods.n_supervisors` weak models, each trained
    on a bootstrap resample of A (bagged) or on one token cluster of A and asked only about
    its cluster's rows (specialists)."""
    b, hp, data = self.b, self.hp, self.b.data
    k, weak = hp["n_supervisors"], self.cfg.weak
    base = data.rows(seed)["a_train"]
    # A seed draws its own members only where it draws its own split (seed_scope "split").
    draw = seed if data.per_seed else None
    routes = {}
    if kind == "bagged":
      member_rows = bag_rows(base, k, draw, data.data_seed)
    else:
      sets = data.sets(seed)
      sketch = token_sketch(sets["a_train"])
      cent = kmeans(sketch, k, data.data_seed if draw is None else draw)
      near = route(sketch, cent)
      member_rows = [base[near == j] for j in range(k)]
      routes = {split: route(token_sketch(sets[split]), cent) for split in splits}
    small = [len(r) for r in member_rows if len(r) < self.cfg.train.batch_size]
    if small:
      sizes = sorted(len(r) for r in member_rows)
      raise ConfigError(f"config key 'methods.n_supervisors': {k} {kind} cut seed {seed}'s "
                        f"{len(base)} rows of A into clusters of {sizes} rows, {len(small)} "
                        f"below a batch ({self.cfg.train.batch_size}): use fewer supervisors")
    how = (lambda j: f"bootstrap resample {j} of {k} of a_train" if kind == "bagged" else
           f"token cluster {j} of {k} of a_train")  # noqa: E731
    names = [data.derive(seed, f"a_train~{kind}{j}of{k}", r, how(j))
             for j, r in enumerate(member_rows)]
    members = [b.train(weak, seed, n, None, "xent", role="weak") for n in names]
    out = {}
    for split in splits:
      preds = [b.predict(weak, m, split, seed) for m in members]
      r = routes.get(split)
      digest = None if r is None else hashlib.sha256(r.tobytes()).hexdigest()[:16]
      s = {"ensemble": kind, "combine": hp["combine"] if r is None else "route",
           "members": [p.key for p in preds], "routes": digest}
      truth = data.sets(seed)[split].labels

      def run(preds=preds, r=r, truth=truth):
        probs = [b.rt.store.arrays("predict", p.key)["probs"] for p in preds]
        return _scored(combine(probs, hp["combine"], r), truth)
      # The routes follow the seed's clusters: they stand for "this split routed by the seed".
      seeded = {digest: f"{split} routed to the token clusters of the seed's A"} if digest else {}
      out[split] = b.graph.add(Stage("predict", s, f"{kind}:{len(preds)}x:s{seed}:{split}", run,
                                     tuple(preds), cost=f"{len(truth)} rows", seed=seed,
                                     seeded=seeded))
    return out

  def students(self, seed: int, weak_labels: Stage, init: Stage | None) -> list[dict]:
    """The method students of one seed, each {"method", "labels" (the labelling of B it learns),
    "student", "weak" (controlled supervisor: its name and {split: labels}), "supervisor"
    ({split: labels} of an ensemble, what misfit is measured against), "chain"}: the
    controlled supervisors' naive students, each filter on each supervisor's labels, and
    each ensemble's student."""
    b, m = self.b, self.cfg.methods
    splits = ["b", "test"] + b.dev
    weak = b.cfg.weak

    def student(labels, tag, loss=m.loss):
      return b.train(b.cfg.strong, seed, "b_student", labels, loss, role="student", init=init,
                     tag=tag)
    out, sources = [], [(None, weak_labels)]
    for name in m.supervisors:
      sup = {split: self.supervisor(name, seed, split) for split in splits}
      controlled = (supervisor_name(name, self.hp), sup)
      sources.append((controlled, sup["b"]))
      # its naive xent student: the reference its filters are paired against
      out.append({"method": "", "labels": sup["b"], "student": student(sup["b"], name, "xent"),
                  "weak": controlled, "loss": "xent"})
    for controlled, labels in sources:
      for name in m.filters:
        tag = controlled[0] if controlled else f"s{seed}"
        kept = self.filtered(name, seed, labels, tag)
        out.append({"method": name, "labels": kept, "student": student(
            kept, f"{controlled[0]}:{name}" if controlled else name),
                    "weak": controlled})
    for kind in m.ensembles:
      ens = self.ensemble(kind, seed, splits)
      out.append({"method": kind, "labels": ens["b"], "student": student(ens["b"], kind),
                  "supervisor": ens,
                  "chain": [f"{m.n_supervisors} {kind} {models.display_name(weak)}"]})
    return out


def _by_recipe(runs: list[dict], has) -> list[tuple[str, list[dict]]]:
  """(label, runs) per pool and recipe (one strong model, variant and gft setting: its seeds)
  of the runs for which `has(run)`."""
  groups = {}
  for r in runs:
    if has(r):
      groups.setdefault((r["pool"], r.get("recipe")), []).append(r)
  out = []
  for _, rs in sorted(groups.items()):
    r = rs[0]
    out.append((f"{r['task']} {r['weak']} [{r['method']}" + (" +gft" if r.get("gft") else "") +
                (f" {r['variant']}" if r.get("variant") else "") + "]", rs))
  return out


def quality_lines(runs: list[dict]) -> list[str]:
  """What a method made of the supervision before any student trained, mean over seeds: a
  label filter's kept rows against the ground truth; an ensemble's test accuracy against the
  single weak model's."""
  out = []
  filters = _by_recipe(runs, lambda r: r.get("label_quality"))
  if filters:
    out += ["", "label filters on B (mean over seeds; precision: kept rows whose label is right; "
            "recall: rows the supervisor got right that are kept):"]
  for name, rs in filters:
    q = {k: np.mean([r["label_quality"][k] for r in rs])
         for k in ("kept", "precision", "recall", "weak_acc")}
    out.append(f"{name} over {len(rs)} seeds: kept {q['kept']:.3f}, precision "
               f"{q['precision']:.3f} (the supervisor's labels of B: {q['weak_acc']:.3f}), "
               f"recall {q['recall']:.3f}")
  ensembles = _by_recipe(runs, lambda r: r.get("method") in ENSEMBLES)
  if ensembles:
    out += ["", "supervisor ensembles on test (mean over seeds):"]
  for name, rs in ensembles:
    out.append(f"{name} over {len(rs)} seeds: {rs[0]['supervisor']} "
               f"{np.mean([r['supervisor_acc'] for r in rs]):.3f}, the single weak model "
               f"{np.mean([r['weak_acc'] for r in rs]):.3f}")
  return out
