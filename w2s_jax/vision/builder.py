"""The vision setting's stage graph of one config (the paper's appendix, openai's vision code):
every role is a linear probe on a frozen backbone's features.

  features(backbone, pool | test | dev)     one forward pass per backbone and image set, shared
                                            by every seed and role
  train(weak probe, A, ground truth)        the weak supervisor (weak backbone's features)
  predict(weak, B)                          the weak labels (soft probabilities)
  train(strong probe, A, ground truth)      the ceiling (strong backbone's features)
  train(strong probe, B, weak labels, loss) a student, for every loss
  predict(each of them, test | dev)         the scores
A seed (seed_scope split) draws its own A/B halves of the pool, so its own weak model and labels.
"""
import logging

import jax
import numpy as np

from w2s_jax import loop, metrics, results, runtime as rt_lib, train
from w2s_jax.data import dataset as data_lib
from w2s_jax.errors import DataError
from w2s_jax.graph import Batch, Output, Stage, seeds_key
from w2s_jax.vision import backbones, images as images_lib

log = logging.getLogger("w2s_jax")


class Pool:
  """The image set of one (source, sizes, data seed): test and dev slices fixed for every seed,
  the rest the pool that seeds cut into A and B."""

  def __init__(self, cfg):
    v = cfg.vision
    every = images_lib.load(v.source, v.load_size)
    n = len(every.y)
    if v.n_test + v.n_dev >= n:
      raise ValueError(f"vision.n_test + vision.n_dev = {v.n_test + v.n_dev} leave none of the "
                       f"{n} images of {v.source} to train on")
    order = np.random.default_rng([cfg.data_seed, 7]).permutation(n)
    test, dev, rest = np.split(order, [v.n_test, v.n_test + v.n_dev])
    rest = rest[:v.n_train] if v.n_train else rest
    self.classes = every.classes
    self.shared = {"test": every.take(test), "pool": every.take(rest)}
    if v.n_dev:
      self.shared["dev"] = every.take(dev)
    self.keys = {name: s.key() for name, s in self.shared.items()}
    self.per_seed, self.data_seed = cfg.seed_scope == "split", cfg.data_seed
    log.info("images %s: pool %d, test %d, dev %d; %d classes", v.source, len(rest), len(test),
             len(dev), len(self.classes))

  def rows(self, seed: int) -> dict:
    """A and B: pool rows of the seed's halves (one split for every seed with batch_order)."""
    a, b = data_lib.seed_halves(len(self.shared["pool"].y), self.data_seed,
                                seed if self.per_seed else None)
    return {"a": a, "b": b}

  def seeded(self, seed: int) -> dict:
    """Stage.seeded: the seed's own split keys -> what they stand for whatever the seed."""
    if not self.per_seed:
      return {}
    return {self.key(seed, s): f"{s} ({len(r)} images) of pool {self.keys['pool']} cut by the "
                               "seed" for s, r in self.rows(seed).items()}

  def key(self, seed: int, split: str) -> str:
    if split in self.keys:
      return self.keys[split]
    return self.shared["pool"].take(self.rows(seed)[split]).key()

  def labels(self, seed: int, split: str) -> np.ndarray:
    if split in self.shared:
      return self.shared[split].y
    return self.shared["pool"].y[self.rows(seed)[split]]


class Builder:
  def __init__(self, cfg, rt, graph):
    self.cfg, self.rt, self.graph, v = cfg, rt, graph, cfg.vision
    self.pool = rt.memo(("vision", v.source, v.load_size, v.n_test, v.n_dev, v.n_train,
                         cfg.data_seed, cfg.seed_scope), lambda: Pool(cfg))
    self.num_classes = len(self.pool.classes)
    self.dev = ["dev"] if "dev" in self.pool.shared else []
    self._rows = []

  def backbone(self, spec: str) -> tuple:
    """(Backbone, its parameters, its identity), loaded once per invocation."""
    def load():
      bb = backbones.get(spec, self.cfg.vision.image_size)
      return (bb, *bb.load())
    return self.rt.memo(("backbone", spec, self.cfg.vision.image_size), load)

  def features(self, spec: str, source: str) -> Stage:
    s = {"backbone": self.backbone(spec)[2], "data": self.pool.keys[source]}

    def run():
      bb, params, _ = self.backbone(spec)
      x = backbones.extractor(bb, params, self.cfg.vision.batch_size, self.rt.mesh)(
          self.pool.shared[source].x)
      n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
      return Output(arrays={"x": x}, metrics={"rows": len(x), "dim": x.shape[1], "params": n})
    return self.graph.add(Stage("features", s, f"features:{spec}:{source}", run,
                                cost=f"{len(self.pool.shared[source].y)} images"))

  def inputs(self, feats: Stage, seed: int, split: str) -> np.ndarray:
    """A probe's inputs: the features of the split's images and a constant (the bias)."""
    x = self.rt.store.arrays("features", feats.key)["x"]
    if split not in self.pool.shared:
      x = x[self.pool.rows(seed)[split]]
    return np.concatenate([x, np.ones((len(x), 1), np.float32)], 1)

  def _source(self, split: str) -> str:
    return split if split in self.pool.shared else "pool"

  def train(self, spec: str, seed: int, split: str, labels: Stage | None, loss: str,
            role: str) -> Stage:
    v = self.cfg.vision
    feats = self.features(spec, self._source(split))
    tcfg = train.with_overrides(self.cfg.train, epochs=v.epochs, lr=v.lr, micro_batch_size=0)
    hp = rt_lib.loss_hp(self.cfg, loss)
    s = {"model": self.backbone(spec)[2], "seed": seed, "data": self.pool.key(seed, split),
         "labels": labels.key if labels else "ground truth", "loss": loss, "loss_hp": hp,
         "train": rt_lib.hashed_train(tcfg), "lr": v.lr, "features": feats.key}
    label = f"{role}:{spec}:{split}:{loss}:s{seed}"

    def prepare() -> tuple:
      """The probe's inputs to loop.fit_probes, and how its result becomes the stage's output."""
      targets = (data_lib.one_hot(self.pool.labels(seed, split), self.num_classes)
                 if labels is None else self.rt.store.arrays("predict", labels.key)["probs"])
      return loop.Probe(self.inputs(feats, seed, split), targets, seed,
                        self.rt.stage_writer(stage), label), finish

    def finish(result) -> Output:
      return Output(arrays={"cls_head": result.params["cls_head"]}, metrics={
          "steps": result.steps, "train_seconds": result.seconds, "best_step": -1,
          "final_train_loss": result.history[-1]["loss"], "history": result.history})

    def run_probes(prepared: list) -> list:
      results = loop.fit_probes([p for p, _ in prepared], loss_name=loss, loss_hp=hp,
                                tcfg=tcfg, lr=v.lr)
      return [done(r) for (_, done), r in zip(prepared, results)]

    deps = (feats,) + ((labels,) if labels else ())
    n = len(self.pool.rows(seed)[split])
    # Every seed's probe of this role as one program (graph.Batch): results as separate runs.
    batch = Batch(seeds_key(s, split=split, truth=labels is None), prepare,
                  run_probes) if self.cfg.train.batch_seeds else None
    stage = self.graph.add(Stage("train", s, label, lambda: run_probes([prepare()])[0], deps,
                                 seed=seed, batch=batch, seeded=self.pool.seeded(seed),
                                 cost=f"{int(np.ceil(v.epochs * n / tcfg.batch_size))} steps"))
    return stage

  def predict(self, spec: str, trained: Stage, split: str, seed: int) -> Stage:
    feats = self.features(spec, self._source(split))
    s = {"train": trained.key, "data": self.pool.key(seed, split), "what": "logits",
         "features": feats.key}

    def run():
      head = {"cls_head": self.rt.store.arrays("train", trained.key)["cls_head"]}
      logits = loop.probe_logits(head, self.inputs(feats, seed, split))
      truth = self.pool.labels(seed, split)
      probs = metrics.softmax(logits)
      correct = probs.argmax(-1) == truth
      return Output(arrays={"logits": logits, "probs": probs, "correct": correct,
                            "labels": truth}, metrics={
          "acc": float(correct.mean()), "auroc": metrics.auroc(logits, truth)})
    return self.graph.add(Stage("predict", s, f"predict:{trained.label}:{split}", run,
                                (trained, feats), cost=f"{len(self.pool.labels(seed, split))} "
                                "images", seeded=self.pool.seeded(seed)))

  # ------------------------------------------------------------------------------ build
  def build(self) -> None:
    v, cfg = self.cfg.vision, self.cfg
    for seed in cfg.seeds:
      weak = self.train(v.weak, seed, "a", None, "xent", "weak")
      weak_labels = self.predict(v.weak, weak, "b", seed)
      ceiling = self.train(v.strong, seed, "a", None, "xent", "ceiling")
      for loss in cfg.losses:
        student = self.train(v.strong, seed, "b", weak_labels, loss, "student")
        trained = {"weak": (v.weak, weak), "student": (v.strong, student),
                   "ceiling": (v.strong, ceiling)}
        preds = {role: {s: self.predict(spec, st, s, seed) for s in ["test"] + self.dev}
                 for role, (spec, st) in trained.items()}
        self._rows.append((seed, loss, trained, preds, weak_labels))

  def check_data(self) -> None:
    for seed in self.cfg.seeds if self.pool.per_seed else self.cfg.seeds[:1]:
      for split in ("a", "b"):
        y = self.pool.labels(seed, split)
        if len(y) < self.cfg.train.batch_size:
          raise DataError(f"vision split {split} (seed {seed}) has {len(y)} images, "
                                 f"fewer than one batch of {self.cfg.train.batch_size}")
        if len(np.unique(y)) < 2:
          raise DataError(f"vision split {split} (seed {seed}) holds one class only")

  def checkpoints(self) -> list:
    return []  # the backbones are checked as they load (vit.load names a missing tensor)

  def rows(self) -> list[dict]:
    cfg, store, v = self.cfg, self.rt.store, self.cfg.vision
    labels = self.pool.shared["test"].y
    prior = float(max(np.mean(labels == c) for c in range(self.num_classes)))
    why = "a frozen backbone has no classifier of these classes before its probe is trained"
    out = []
    for seed, loss, trained, preds, weak_labels in self._rows:
      logits = {r: store.arrays("predict", p["test"].key)["logits"] for r, p in preds.items()}
      scores = metrics.score_run(logits["weak"], logits["student"], logits["ceiling"], labels,
                                 samples=cfg.bootstrap_samples, seed=seed)
      scores["pgr_auroc"] = metrics.pgr(scores["weak_auroc"], scores["student_auroc"],
                                        scores["ceiling_auroc"])
      group = [f"vision:{v.source}", self.pool.keys["test"], v.weak, v.strong, loss]
      params = {role: store.metrics("features", self.features(
          spec, "test").key)["params"] for role, (spec, _) in trained.items()}
      out.append({
          **results.row_identity(group, seed, [p["test"] for p in preds.values()], cfg),
          "setting": "vision", "task": f"vision:{v.source}", "data_key": self.pool.keys["test"],
          "weak": v.weak, "strong": v.strong, "supervisor": v.weak, "loss": loss, "seed": seed,
          "gft": False, **scores, "seed_scope": cfg.seed_scope, "oracle": False,
          "prior": prior, "chance": 1.0 / self.num_classes,
          "zero_shot": {v.weak: {"why": why}, v.strong: {"why": why}},
          "weak_label_acc": store.metrics("predict", weak_labels.key)["acc"],
          "params": {"weak": params["weak"], "strong": params["ceiling"]},
          "eval_sets": {},
          "stage_keys": {r: st.key for r, (_, st) in trained.items()},
          "predict_keys": {r: p["test"].key for r, p in preds.items()},
          **({"dev_predict_keys": {r: p["dev"].key for r, p in preds.items()}} if self.dev
             else {}),
          "seconds": {r: store.metrics("train", st.key)["seconds"]
                      for r, (_, st) in trained.items()},
          "selected_step": {r: -1 for r in trained},
          "no_finetune_key": None,
      })
    return out


def build(cfg, rt, graph) -> Builder:
  b = Builder(cfg, rt, graph)
  b.build()
  return b
