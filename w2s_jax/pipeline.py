"""Classification and reward-model setting: builds the weak-to-strong stage graph of one config.

  train(weak, A, ground truth)              the weak supervisor; with A = the strong rows it is
                                            also that model's ceiling (one stage, two roles)
  predict(weak, B)                          the weak labels (soft probabilities)
  train(strong, A_strong, ground truth)     the ceiling   [after gft(strong) when enabled]
  train(strong, B_strong, predict(weak, B), loss)   a student
  predict(each of them, test | eval set)    the scores
A probed model (mode "probe") reads `features(model, split)` stages: one forward pass per split
serves every probe. The strong models may train on the first `task.n_strong_train` rows of A and
B only ("a_strong", "b_strong"), so the ceiling and the students see equally many rows.
"""
import logging
import time

import numpy as np

from w2s_jax import graph as graph_lib, loop, metrics, models, report, runtime as rt_lib, train
from w2s_jax import zero_shot as zs_lib
from w2s_jax.data import dataset as data_lib, tasks
from w2s_jax.data.tokenizers import get_tokenizer
from w2s_jax.errors import ConfigError
from w2s_jax.graph import Output, Stage

log = logging.getLogger("w2s_jax")


class Data:
  """The splits of one (task, tokenizer, lengths, data seed): shared by a sweep's configs."""

  def __init__(self, cfg):
    self.tokenizer = get_tokenizer(cfg.tokenizer)
    self.splits = data_lib.load_splits(cfg.task, self.tokenizer, cfg.max_len, cfg.data_seed)
    self.pairwise = tasks.get(cfg.task.name).kind == "pairwise"
    self.num_classes = cfg.num_classes or len(self.splits.labels)
    self.sets = {"a": self.splits.a, "b": self.splits.b, "test": self.splits.test}
    n = cfg.task.n_strong_train
    for name in ("a", "b"):
      ds = self.sets[name]
      self.sets[f"{name}_strong"] = ds.take(np.arange(min(n, len(ds)))) if n else ds
    # Early stopping holds out B's last rows (scored against their weak labels); the students
    # train on the strong rows of B before them.
    self.n_val = 0
    if cfg.early_stopping.enabled:
      b, m = self.sets["b"], len(self.sets["b_strong"])
      self.n_val = cfg.early_stopping.val_rows or max(1, m // 10)
      if self.n_val >= len(b):
        raise ConfigError(f"config key 'early_stopping.val_rows': {self.n_val} rows of B's "
                          f"{len(b)} leave none for the students")
      self.sets["b_val"] = b.take(np.arange(len(b) - self.n_val, len(b)))
      self.sets["b_student"] = b.take(np.arange(min(m, len(b) - self.n_val)))
    else:
      self.sets["b_student"] = self.sets["b_strong"]
    # The zero-shot baseline: the test rows with the task's prompt appended (classification), or
    # the pairs themselves scored by likelihood (pairwise).
    self.widths = {}  # split -> its rows' padded width, where that exceeds max_len
    self.answer_ids, self.zero_shot_why = None, ""
    task = tasks.get(cfg.task.name)
    if not self.pairwise and task.zero_shot is None:
      self.zero_shot_why = f"task {cfg.task.name!r} has no zero-shot prompt"
    elif not self.pairwise:
      suffix, words = task.zero_shot
      self.answer_ids, self.zero_shot_why = zs_lib.answer_tokens(self.tokenizer, words)
      ds = zs_lib.prompted(self.sets["test"], zs_lib.bare_tokens(self.tokenizer, suffix))
      self.sets["zs_test"] = ds
      self.widths["zs_test"] = ds.tokens.shape[1]
    for name in cfg.eval_tasks:
      self.sets[f"eval:{name}"] = data_lib.load_eval(name, cfg.task, self.tokenizer,
                                                     cfg.eval_max_len or cfg.max_len)
    self.keys = {name: ds.key() for name, ds in self.sets.items()}
    log.info("data %s: A %d, B %d, test %d examples (dropped as too long: %s); strong models "
             "train on %d of A and %d of B; %d classes", cfg.task.name, len(self.splits.a),
             len(self.splits.b), len(self.splits.test), self.splits.dropped,
             len(self.sets["a_strong"]), len(self.sets["b_strong"]), self.num_classes)


def data_for(cfg, rt) -> Data:
  es = cfg.early_stopping
  key = ("classification", cfg.task.to_json(), cfg.tokenizer, cfg.max_len, cfg.eval_max_len,
         cfg.data_seed, cfg.num_classes, tuple(cfg.eval_tasks), es.enabled and es.val_rows)
  return rt.memo(key, lambda: Data(cfg))


class Builder:
  """Adds the stages of one config to a graph; `rows()` turns finished stages into results."""

  def __init__(self, cfg, rt, graph: graph_lib.Graph):
    self.cfg, self.rt, self.graph = cfg, rt, graph
    self.data = data_for(cfg, rt)
    self.evals = [f"eval:{name}" for name in cfg.eval_tasks]
    self._rows = []

  # ----------------------------------------------------------------------------- models
  def model_cfg(self, spec):
    return self.rt.model_cfg(spec, self.data.tokenizer.vocab_size)

  def trainer(self, spec):
    lora = (spec.lora_rank, spec.lora_alpha, tuple(spec.lora_targets)) if spec.lora_rank else None
    t = self.cfg.train
    return self.rt.trainer(self.model_cfg(spec), self.data.num_classes, dtype=t.dtype,
                           attention=t.attention, remat=spec.remat, lora=lora,
                           pairwise=self.data.pairwise)

  def identity(self, spec) -> dict:
    return {**rt_lib.model_identity(spec, self.model_cfg(spec)),
            "num_classes": self.data.num_classes, "tokenizer": self.cfg.tokenizer}

  # ----------------------------------------------------------------------------- stages
  def features(self, spec, seed: int, split: str) -> Stage:
    """The untrained model's last-token features on a split (what a linear probe reads). With
    `features_all_layers`, the full-depth model's features after every layer, so that probes
    on any depth (model n_layers) of one checkpoint share one forward pass."""
    all_layers = self.cfg.features_all_layers
    if all_layers:
      spec = spec.copy_and_resolve_references()
      spec.n_layers = 0
    ident = self.identity(spec)
    del ident["mode"]
    s = {"model": ident, "seed": seed if spec.init == "scratch" else None,
         "data": self.data.keys[split], "layers": "all" if all_layers else "last"}

    def run():
      tr = self.trainer(spec)
      params = models.initial_params(spec.init, tr, seed)
      x = tr.predict(params, self.data.sets[split], self.cfg.train.eval_batch_size,
                     tuple(self.cfg.train.buckets) + ((self.data.widths[split],)
                                                      if split in self.data.widths else ()),
                     what="layers" if all_layers else "features")
      # Every layer's features in half precision: N x L x d per split is the memory they take.
      out = {"layers": x.astype(np.float16)} if all_layers else {"x": x}
      return Output(arrays=out, metrics={"rows": len(x)})
    return self.graph.add(Stage("features", s, f"features:{models.display_name(spec)}:{split}",
                                run, cost=f"{len(self.data.sets[split])} rows", seed=seed))

  def probe_inputs(self, spec, feats: Stage) -> np.ndarray:
    """What `spec`'s probe reads of a features stage: its depth's features, fp32 [N, d]."""
    arrays = self.rt.store.arrays("features", feats.key)
    if "x" in arrays:
      return arrays["x"]
    return arrays["layers"][:, self.model_cfg(spec).n_layers - 1].astype(np.float32)

  def gft(self, spec, seed: int) -> Stage:
    """Generative fine-tuning: next-token loss on the strong rows' texts (labels never read)."""
    g = self.cfg.generative_finetune
    prefix = g.texts == "prefix"
    texts, targets = self.rt.memo(("gft texts", self.data.keys["a_strong"],
                                   self.data.keys["b_strong"], prefix), lambda: data_lib.text_rows(
                                       self.data.sets["a_strong"], self.data.sets["b_strong"],
                                       prefix_only=prefix))
    mc = self.model_cfg(spec)
    tcfg = train.with_overrides(self.cfg.train, epochs=g.epochs, micro_batch_size=0,
                                batch_size=g.batch_size or self.cfg.train.batch_size)
    lr = g.lr or rt_lib.learning_rate(self.cfg.train, mc, spec)
    s = {"model": self.identity(spec), "seed": seed, "texts": texts.key(), "gft": g.to_dict(),
         "train": rt_lib.hashed_train(tcfg), "lr": lr}
    label = f"gft:{models.display_name(spec)}:s{seed}"

    def run():
      tr = self.trainer(spec)
      result = loop.fit(tr, models.initial_params(spec.init, tr, seed), texts, targets,
                         objective="answer", loss_name="xent", loss_hp={}, tcfg=tcfg, lr=lr,
                         seed=seed, writer=self.rt.stage_writer(stage), label=label,
                         ckpt_dir=self.rt.store.ckpt_dir("gft", stage.key))
      self.rt.keep_params(stage.name, result.params)
      return Output(params=result.params, metrics={
          "steps": result.steps, "texts": len(texts), "train_seconds": result.seconds,
          "first_train_loss": result.history[0]["loss"],
          "final_train_loss": result.history[-1]["loss"]})
    stage = self.graph.add(Stage("gft", s, label, run, cost=f"{len(texts)} texts", seed=seed))
    return stage

  def zero_shot(self, spec, seed: int) -> Stage | None:
    """The pretrained model's score on test with no training (zero_shot.py): None for a model
    trained from scratch or a task without a zero-shot prompt."""
    d = self.data
    if spec.init == "scratch" or d.zero_shot_why:
      return None
    ident = self.identity(spec)
    del ident["mode"]  # a probe and a fine-tuned model of one checkpoint start alike
    feats = None if d.pairwise else self.features(spec, seed, "zs_test")
    s = {"model": ident, "data": d.keys["test"],
         "how": "likelihood" if d.pairwise else {"answers": d.answer_ids, "prompt": feats.key}}
    t = self.cfg.train

    def run():
      tr = self.trainer(spec)
      if d.pairwise:
        probs = zs_lib.pair_probs(tr, models.initial_params(spec.init, tr, seed), d.sets["test"],
                                  t.eval_batch_size, t.buckets)
      else:
        cols = self.rt.memo(("answer columns", spec.init, tuple(d.answer_ids)),
                            lambda: zs_lib.head_columns(
                                tr, models.initial_params(spec.init, tr, seed), d.answer_ids))
        probs = zs_lib.class_probs(self.probe_inputs(spec, feats), cols,
                                   self.model_cfg(spec).final_softcap)
      labels = d.sets["test"].labels
      correct = probs.argmax(-1) == labels
      return Output(arrays={"probs": probs, "correct": correct, "labels": labels}, metrics={
          "acc": float(correct.mean()), "auroc": metrics.auroc(probs, labels),
          "acc_ci95": metrics.accuracy_interval(correct)})
    return self.graph.add(Stage("zero_shot", s, f"zero_shot:{models.display_name(spec)}:test",
                                run, (feats,) if feats else (), cost=f"{len(d.sets['test'])} rows"))

  def train(self, spec, seed: int, split: str, labels: Stage | None, loss: str, *, role: str,
            init: Stage | None = None) -> Stage:
    """`spec` trained on `split` with ground truth (labels None) or a predict stage's soft
    labels (its first len(split) rows: a_strong / b_strong are prefixes), for the schedule of
    `role` (weak, ceiling, student); the role itself is not hashed, so a model trained alike in
    two roles is one stage."""
    mc = self.model_cfg(spec)
    hp = rt_lib.loss_hp(self.cfg, loss, models.param_count(mc))
    lr = rt_lib.learning_rate(self.cfg.train, mc, spec)
    tcfg, steps = rt_lib.role_schedule(self.cfg, role, spec)
    deps = [d for d in (labels, init) if d is not None]
    probe = spec.mode == "probe"
    feats = self.features(spec, seed, split.split("_")[0]) if probe else None
    if feats is not None:
      deps.append(feats)
    s = {"model": self.identity(spec), "seed": seed, "data": self.data.keys[split],
         "labels": labels.key if labels else "ground truth", "loss": loss, "loss_hp": hp,
         "train": rt_lib.hashed_train(tcfg), "steps": steps, "lr": lr,
         "init": init.key if init else None, "features": feats.key if feats else None}
    select = role == "student" and self.cfg.early_stopping.enabled
    if select:  # what selects the parameters is part of what determines them
      s["early_stopping"] = {**self.cfg.early_stopping.to_dict(), "val": self.data.keys["b_val"]}
    if self.cfg.curves_every:
      s["curves_every"] = self.cfg.curves_every
    test_feats = self.features(spec, seed, "test") if probe and (
        select or self.cfg.curves_every) else None
    if test_feats is not None:
      deps.append(test_feats)
    n = len(self.data.sets[split])
    label = ":".join([role, models.display_name(spec), split, loss] +
                     (["gft"] if init is not None else []) + [f"s{seed}"])

    def run():
      store, t0 = self.rt.store, time.time()
      ds = self.data.sets[split]
      targets = (data_lib.one_hot(ds.labels, self.data.num_classes) if labels is None else
                 store.arrays("predict", labels.key)["probs"][:n])
      fit = dict(loss_name=loss, loss_hp=hp, tcfg=tcfg, lr=lr, seed=seed, steps=steps,
                 writer=self.rt.stage_writer(stage), label=label, evaluation=self.evaluation(
                     spec, labels if select else None, feats, test_feats))
      if probe:  # the head is small: stored as an array, not a checkpoint
        x = self.probe_inputs(spec, feats)[:n]
        result = loop.fit_probe(x, targets, **fit)
      else:
        tr = self.trainer(spec)
        start = (self.rt.params("gft", init.key, tr) if init is not None
                 else models.initial_params(spec.init, tr, seed))
        compiles, traces = rt_lib.COMPILES["n"], dict(tr.traces)
        result = loop.fit(tr, start, ds, targets, objective="soft",
                           ckpt_dir=store.ckpt_dir("train", stage.key),
                           profile_dir=self.rt.profile_dir(stage), **fit)
        self.rt.keep_params(stage.name, result.params)
      m = {"steps": result.steps, "train_seconds": result.seconds, "evals": result.evals,
           "best_step": result.best_step,
           "final_train_loss": result.history[-1]["loss"], "resumed_from": result.resumed_from,
           "history": result.history, "seconds": time.time() - t0, "speed": result.speed}
      if not probe:
        m["compiles"] = {"all": rt_lib.COMPILES["n"] - compiles,
                         **{k: tr.traces[k] - traces[k] for k in traces}}
      if probe:
        return Output(arrays={"cls_head": result.params["cls_head"]}, metrics=m)
      return Output(params=result.params, metrics=m)
    total = steps or max(1, int(np.ceil(tcfg.epochs * (n // tcfg.batch_size))))
    stage = self.graph.add(Stage("train", s, label, run, tuple(deps),
                                 cost=f"{total} steps x {tcfg.batch_size}", seed=seed))
    return stage

  def evaluation(self, spec, labels: Stage | None, feats: Stage | None,
                 test_feats: Stage | None):
    """Periodic scores of a model in training: on test every `curves_every` steps, and for a
    student with early stopping, against the weak labels (or with `oracle`, the ground truth)
    of B's held-out rows every `early_stopping.every` steps, selecting on that metric."""
    es, store, data = self.cfg.early_stopping, self.rt.store, self.data
    if labels is None and not self.cfg.curves_every:
      return None
    sets = {"test": (data.sets["test"], data.sets["test"].labels, None)}
    if labels is not None:
      weak = store.arrays("predict", labels.key)["probs"][-data.n_val:]
      sets["val"] = (data.sets["b_val"], data.sets["b_val"].labels, weak)
    if feats is not None:  # a probe: the features of B's last rows and of test
      x = {"val": self.probe_inputs(spec, feats)[-data.n_val:] if labels else None,
           "test": self.probe_inputs(spec, test_feats)}
    t = self.cfg.train

    def evaluate(params):
      out = {}
      for name, (ds, truth, weak) in sets.items():
        probs = (loop.probe_predict(params, x[name]) if feats is not None else
                 self.trainer(spec).predict(params, ds, t.eval_batch_size, t.buckets))
        out[f"{name}_gt_acc"] = metrics.accuracy(probs, truth)
        out[f"{name}_gt_auroc"] = metrics.auroc(probs, truth)
        if weak is not None:
          hard = weak.argmax(-1)
          out[f"{name}_weak_acc"] = metrics.accuracy(probs, hard)
          out[f"{name}_weak_auroc"] = metrics.auroc(probs, hard)
          out[f"{name}_weak_loss"] = float(-np.mean(np.sum(weak * np.log(
              np.clip(probs, 1e-12, 1)), -1)))
      return out
    if labels is None:
      return loop.Evaluation(evaluate, self.cfg.curves_every)
    metric = f"val_{'gt' if es.oracle else 'weak'}_{es.metric}"
    return loop.Evaluation(evaluate, es.every, metric, "min" if es.metric == "loss" else "max")

  def predict(self, spec, trained: Stage, split: str, seed: int) -> Stage:
    """Class probabilities of a train stage on a split; with the split's ground truth, the
    per-row correctness (what pooled intervals resample)."""
    probe = spec.mode == "probe"
    feats = self.features(spec, seed, split) if probe else None
    s = {"train": trained.key, "data": self.data.keys[split], "what": "probs",
         "features": feats.key if feats else None}
    ds = self.data.sets[split]

    def run():
      if probe:
        head = {"cls_head": self.rt.store.arrays("train", trained.key)["cls_head"]}
        probs = loop.probe_predict(head, self.probe_inputs(spec, feats))
      else:
        tr = self.trainer(spec)
        probs = tr.predict(self.rt.params("train", trained.key, tr), ds,
                           self.cfg.train.eval_batch_size, self.cfg.train.buckets)
      correct = probs.argmax(-1) == ds.labels
      return Output(arrays={"probs": probs, "correct": correct, "labels": ds.labels}, metrics={
          "acc": float(correct.mean()), "auroc": metrics.auroc(probs, ds.labels)})
    deps = (trained,) + ((feats,) if feats else ())
    return self.graph.add(Stage("predict", s, f"predict:{trained.label}:{split}", run, deps,
                                cost=f"{len(ds)} rows"))

  # ------------------------------------------------------------------------------ build
  def build(self) -> None:
    cfg = self.cfg
    gft_variants = (False, True) if cfg.generative_finetune.enabled else (False,)
    self._zero = {role: self.zero_shot(cfg[role], cfg.seeds[0]) for role in ("weak", "strong")}
    for seed in cfg.seeds:
      weak = self.train(cfg.weak, seed, "a", None, "xent", role="weak")
      weak_labels = self.predict(cfg.weak, weak, "b", seed)
      for gft in gft_variants:
        init = self.gft(cfg.strong, seed) if gft else None
        ceiling = self.train(cfg.strong, seed, "a_strong", None, "xent", role="ceiling",
                             init=init)
        for loss in cfg.losses:
          student = self.train(cfg.strong, seed, "b_student", weak_labels, loss,
                               role="student", init=init)
          models_ = {"weak": (cfg.weak, weak), "ceiling": (cfg.strong, ceiling),
                     "student": (cfg.strong, student)}
          preds = {role: {split: self.predict(spec, st, split, seed)
                          for split in ["test"] + self.evals}
                   for role, (spec, st) in models_.items()}
          self._rows.append((seed, gft, loss, models_, preds, weak_labels))

  def check_data(self) -> None:
    """Every split a stage trains on or scores holds rows, both classes and one batch."""
    from w2s_jax.data import checks  # noqa: PLC0415
    t, names = self.cfg.train, self.data.splits.labels
    used = {"a", "b_student", "test", *self.evals} | ({"a_strong"} if self.cfg.task.n_strong_train
                                                     else set())
    checks.check_splits({n: self.data.sets[n] for n in used}, self.data.num_classes,
                        {"a": t.batch_size, "a_strong": t.batch_size, "b_student": t.batch_size},
                        label_names=names)

  def checkpoints(self) -> list:
    """(init, trainer) of every model that starts from a checkpoint (checked before training)."""
    return [(m.init, self.trainer(m)) for m in (self.cfg.weak, self.cfg.strong)
            if m.init != "scratch"]

  def rows(self) -> list[dict]:
    cfg, store, data = self.cfg, self.rt.store, self.data
    weak_name, strong_name = models.display_name(cfg.weak), models.display_name(cfg.strong)
    labels = data.sets["test"].labels
    zero = {}  # each model's zero-shot score, or why it has none
    for role, name in (("weak", weak_name), ("strong", strong_name)):
      st = self._zero[role]
      zero[name] = ({k: store.metrics("zero_shot", st.key)[k] for k in ("acc", "auroc", "acc_ci95")}
                    if st else {"why": "trained from scratch" if cfg[role].init == "scratch"
                                else data.zero_shot_why})
    out = []
    for seed, gft, loss, models_, preds, weak_labels in self._rows:
      probs = {r: store.arrays("predict", p["test"].key)["probs"] for r, p in preds.items()}
      scores = metrics.score_run(probs["weak"], probs["student"], probs["ceiling"], labels,
                                 samples=cfg.bootstrap_samples, seed=seed)
      # Ranking quality too: a biased model can sit at the prior in accuracy and still order
      # the pairs (or rows) well.
      scores["pgr_auroc"] = metrics.pgr(scores["weak_auroc"], scores["student_auroc"],
                                        scores["ceiling_auroc"])
      group = [cfg.task.name, data.keys["test"], weak_name, strong_name, loss] + (
          ["gft"] if gft else [])
      out.append({
          **report.row_identity(group, seed, [p["test"] for p in preds.values()], cfg),
          "setting": "classification",
          "task": cfg.task.name, "data_key": data.keys["test"], "weak": weak_name,
          "strong": strong_name, "loss": loss, "seed": seed, "gft": gft, **scores,
          # A student kept at the step that scored best on ground truth: an analysis (it reads
          # labels a weak-to-strong user does not have), marked in every table and figure.
          "oracle": bool(cfg.early_stopping.enabled and cfg.early_stopping.oracle),
          "prior": float(max(np.mean(labels == c) for c in range(data.num_classes))),
          "zero_shot": zero,
          "weak_label_acc": store.metrics("predict", weak_labels.key)["acc"],
          "params": {"weak": models.param_count(self.model_cfg(cfg.weak)),
                     "strong": models.param_count(self.model_cfg(cfg.strong))},
          "eval_sets": {name.removeprefix("eval:"): {
              r: store.metrics("predict", p[name].key)["acc"] for r, p in preds.items()}
              for name in self.evals},
          "stage_keys": {r: st.key for r, (_, st) in models_.items()},
          "predict_keys": {r: p["test"].key for r, p in preds.items()},
          "seconds": {r: store.metrics("train", st.key)["seconds"]
                      for r, (_, st) in models_.items()},
          "early_stopped_step": store.metrics("train", models_["student"][1].key).get(
              "best_step", -1),
      })
    return out


def build(cfg, rt, graph) -> Builder:
  b = Builder(cfg, rt, graph)
  b.build()
  return b


def run(cfg, workdir: str) -> list[dict]:
  """One config (and its sweep) run end to end; returns its result rows."""
  from w2s_jax import experiment  # noqa: PLC0415
  return experiment.run(cfg, workdir)
