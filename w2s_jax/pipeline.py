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

from w2s_jax import graph as graph_lib, loop, metrics, models, options, results, \
    runtime as rt_lib, train
from w2s_jax import methods as methods_lib, zero_shot as zs_lib
from w2s_jax.data import dataset as data_lib
from w2s_jax.graph import Output, Stage
from w2s_jax.replicates import data_for, seeded_split

log = logging.getLogger("w2s_jax")


class Builder:
  """Adds the stages of one config to a graph; `rows()` turns finished stages into results."""

  def __init__(self, cfg, rt, graph: graph_lib.Graph):
    self.cfg, self.rt, self.graph = cfg, rt, graph
    self.data = data_for(cfg, rt)
    self.evals = [f"eval:{name}" for name in cfg.eval_tasks]
    self.dev = ["dev"] if "dev" in self.data.shared else []
    m = cfg.methods
    self.methods = methods_lib.Methods(self) if (m.filters or m.ensembles or m.supervisors) \
        else None
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
    """The untrained model's last-token features on a split (what a linear probe reads): a
    split cut from the pool reads the features of the whole pool, computed once for every seed
    (`probe_inputs` takes its rows). With `features_all_layers`, the full-depth model's
    features after every layer, so that probes on any depth (model n_layers) of one checkpoint
    share one forward pass."""
    all_layers = self.cfg.features_all_layers
    if all_layers:
      spec = spec.copy_and_resolve_references()
      spec.n_layers = 0
    source = "pool" if seeded_split(split) else split
    ident = self.identity(spec)
    del ident["mode"]
    s = {"model": ident, "seed": seed if spec.init == "scratch" else None,
         "data": self.data.shared_keys[source], "layers": "all" if all_layers else "last"}
    ds = self.data.shared[source]

    def run():
      tr = self.trainer(spec)
      params = models.initial_params(spec.init, tr, seed)
      x = tr.predict(params, ds, self.cfg.train.eval_batch_size,
                     tuple(self.cfg.train.buckets) + ((self.data.widths[source],)
                                                      if source in self.data.widths else ()),
                     what="layers" if all_layers else "features")
      # Every layer's features in half precision: N x L x d per split is the memory they take.
      out = {"layers": x.astype(np.float16)} if all_layers else {"x": x}
      return Output(arrays=out, metrics={"rows": len(x)})
    return self.graph.add(Stage("features", s, f"features:{models.display_name(spec)}:{source}",
                                run, cost=f"{len(ds)} rows", seed=seed))

  def probe_inputs(self, spec, feats: Stage, seed: int = 0, split: str = "") -> np.ndarray:
    """What `spec`'s probe reads of a features stage: its depth's features, fp32 [N, d]; for a
    split cut from the pool, that split's rows for `seed`."""
    arrays = self.rt.store.arrays("features", feats.key)
    x = arrays["x"] if "x" in arrays else arrays["layers"][:, self.model_cfg(spec).n_layers - 1]
    if seeded_split(split):
      x = x[self.data.rows(seed)[split]]
    return x.astype(np.float32)

  def gft(self, spec, seed: int) -> Stage:
    """Generative fine-tuning: next-token loss on the strong rows' texts (labels never read)."""
    g = self.cfg.generative_finetune
    prefix = g.texts == "prefix"
    keys, sets = self.data.keys(seed), self.data.sets(seed)
    texts, targets = self.rt.memo(("gft texts", keys["a_strong"], keys["b_strong"], prefix),
                                  lambda: data_lib.text_rows(sets["a_strong"], sets["b_strong"],
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
    seeded = {texts.key(): f"texts of a_strong, b_strong of pool {self.data.shared_keys['pool']} "
              "cut by the seed"} if self.data.per_seed else {}
    stage = self.graph.add(Stage("gft", s, label, run, cost=f"{len(texts)} texts", seed=seed,
                                 seeded=seeded))
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
    s = {"model": ident, "data": d.shared_keys["test"],
         "how": "likelihood" if d.pairwise else {"answers": d.answer_ids, "prompt": feats.key},
         "what": "logits"}
    t = self.cfg.train

    def run():
      tr = self.trainer(spec)
      if d.pairwise:
        logits = zs_lib.pair_logits(tr, models.initial_params(spec.init, tr, seed),
                                    d.shared["test"], t.eval_batch_size, t.buckets)
      else:
        cols = self.rt.memo(("answer columns", spec.init, tuple(d.answer_ids)),
                            lambda: zs_lib.head_columns(
                                tr, models.initial_params(spec.init, tr, seed), d.answer_ids))
        logits = zs_lib.class_logits(self.probe_inputs(spec, feats), cols,
                                     self.model_cfg(spec).final_softcap)
      labels, probs = d.shared["test"].labels, metrics.softmax(logits)
      correct = probs.argmax(-1) == labels
      return Output(arrays={"logits": logits, "probs": probs, "correct": correct,
                            "labels": labels}, metrics={
          "acc": float(correct.mean()), "auroc": metrics.auroc(logits, labels),
          "acc_ci95": metrics.accuracy_interval(correct)})
    return self.graph.add(Stage("zero_shot", s, f"zero_shot:{models.display_name(spec)}:test",
                                run, (feats,) if feats else (),
                                cost=f"{len(d.shared['test'])} rows"))

  def train(self, spec, seed: int, split: str, labels: Stage | None, loss: str, *, role: str,
            init: Stage | None = None, tag: str = "") -> Stage:
    """`spec` trained on `split` with ground truth (labels None) or a predict stage's soft
    labels (of B: b_student is its first rows), for the schedule of `role` (weak, ceiling,
    student); the role itself is not hashed, so a model trained alike in two roles is one
    stage. With early_stopping every role keeps its best evaluated step on its own held-out
    rows: A's last rows' ground truth for a model trained on ground truth, B's last rows' weak
    labels for a student."""
    mc = self.model_cfg(spec)
    hp = rt_lib.loss_hp(self.cfg, loss, models.param_count(mc))
    lr = rt_lib.learning_rate(self.cfg.train, mc, spec)
    tcfg, steps = rt_lib.role_schedule(self.cfg, role, spec)
    keys = self.data.keys(seed)
    deps = [d for d in (labels, init) if d is not None]
    probe = spec.mode == "probe"
    feats = self.features(spec, seed, split) if probe else None
    if feats is not None:
      deps.append(feats)
    s = {"model": self.identity(spec), "seed": seed, "data": keys[split],
         "labels": labels.key if labels else "ground truth", "loss": loss, "loss_hp": hp,
         "train": rt_lib.hashed_train(tcfg), "steps": steps, "lr": lr,
         "init": init.key if init else None, "features": feats.key if feats else None}
    select = self.cfg.early_stopping.enabled
    if select:  # what selects the parameters is part of what determines them
      es = self.cfg.early_stopping.to_dict()
      if labels is None:  # ground truth of A's held-out rows: oracle is a student's option
        del es["oracle"]
      s["early_stopping"] = {**es, "val": keys["a_val" if labels is None else "b_val"]}
    if self.cfg.curves_every:
      s["curves_every"] = self.cfg.curves_every
    test_feats = self.features(spec, seed, "test") if probe and (
        select or self.cfg.curves_every) else None
    if test_feats is not None:
      deps.append(test_feats)
    n = len(self.data.sets(seed)[split])
    label = ":".join([role, models.display_name(spec), split, loss] +
                     (["gft"] if init is not None else []) + ([tag] if tag else []) +
                     [f"s{seed}"])  # tag: a method's name, for the logs only

    def rows():
      """The training rows and their targets (ground truth, or the labels' probabilities)."""
      ds = self.data.sets(seed)[split]
      given = {} if labels is None else self.rt.store.arrays("predict", labels.key)
      targets = (data_lib.one_hot(ds.labels, self.data.num_classes) if labels is None else
                 given["probs"][self.data.in_b(split)])
      # A label filter's rows left out (methods.FILTERS): the student never sees them.
      keep = given["keep"][self.data.in_b(split)] if "keep" in given else None
      if keep is not None:
        ds, targets = ds.take(np.flatnonzero(keep)), targets[keep]
      return ds, targets, keep

    def evaluation():
      return self.evaluation(spec, seed, select, labels, feats, test_feats)

    def finish(result, extra=None) -> Output:
      m = {"steps": result.steps, "train_seconds": result.seconds, "evals": result.evals,
           "best_step": result.best_step,
           "final_train_loss": result.history[-1]["loss"], "resumed_from": result.resumed_from,
           "history": result.history, "speed": result.speed, **(extra or {})}
      if probe:  # the head is small: stored as an array, not a checkpoint
        return Output(arrays={"cls_head": result.params["cls_head"]}, metrics=m)
      return Output(params=result.params, metrics=m)

    def prepare() -> tuple:
      """A probe's inputs to loop.fit_probes, and how its result becomes the stage's output."""
      _, targets, keep = rows()
      x = self.probe_inputs(spec, feats, seed, split)
      return loop.Probe(x if keep is None else x[keep], targets, seed,
                        self.rt.stage_writer(stage), label, evaluation()), finish

    def run():
      if probe:
        return run_probes([prepare()])[0]
      store, t0 = self.rt.store, time.time()
      ds, targets, _ = rows()
      tr = self.trainer(spec)
      start = (self.rt.params("gft", init.key, tr) if init is not None
               else models.initial_params(spec.init, tr, seed))
      compiles, traces = rt_lib.COMPILES["n"], dict(tr.traces)
      result = loop.fit(tr, start, ds, targets, objective="soft", loss_name=loss, loss_hp=hp,
                        tcfg=tcfg, lr=lr, seed=seed, steps=steps,
                        writer=self.rt.stage_writer(stage), label=label,
                        evaluation=evaluation(), ckpt_dir=store.ckpt_dir("train", stage.key),
                        profile_dir=self.rt.profile_dir(stage))
      self.rt.keep_params(stage.name, result.params)
      return finish(result, {"seconds": time.time() - t0, "compiles": {
          "all": rt_lib.COMPILES["n"] - compiles, **{k: tr.traces[k] - traces[k] for k in traces}}})

    def run_probes(prepared: list) -> list:
      results = loop.fit_probes([p for p, _ in prepared], loss_name=loss, loss_hp=hp,
                                tcfg=tcfg, lr=lr, steps=steps)
      return [done(r) for (_, done), r in zip(prepared, results)]
    total = steps or max(1, int(np.ceil(tcfg.epochs * (n // tcfg.batch_size))))
    # Probes of every seed (one program, each its own rows and batch order): graph.Batch.
    batch = graph_lib.Batch(graph_lib.seeds_key(s, split=split, truth=labels is None), prepare,
                            run_probes) if probe and self.cfg.train.batch_seeds else None
    stage = self.graph.add(Stage("train", s, label, run, tuple(deps),
                                 cost=f"{total} steps x {tcfg.batch_size}", seed=seed,
                                 seeded=self.data.seeded(seed), batch=batch))
    return stage

  def evaluation(self, spec, seed: int, select: bool, labels: Stage | None,
                 feats: Stage | None, test_feats: Stage | None):
    """Periodic scores of a model in training: on test every `curves_every` steps (curves,
    never read by selection), and with `select` on the model's held-out rows every
    `early_stopping.every` steps, keeping the best step by that metric: against ground truth
    (a_val) for a model trained on it, against the weak labels of b_val for a student (or with
    `oracle`, their ground truth: an analysis)."""
    es, store, data = self.cfg.early_stopping, self.rt.store, self.data
    if not select and not self.cfg.curves_every:
      return None
    sets = data.sets(seed)
    scored = {"test": (sets["test"], sets["test"].labels, None)}
    val = "a_val" if labels is None else "b_val"
    kept = slice(None)
    if select:
      given = {} if labels is None else store.arrays("predict", labels.key)
      if "keep" in given:  # a label filter's dropped rows select nothing either
        kept = np.flatnonzero(given["keep"][data.in_b("b_val")])
      weak = given["probs"][data.in_b("b_val")][kept] if given else None
      ds = sets[val].take(np.arange(len(sets[val]))[kept])
      scored["val"] = (ds, ds.labels, weak)
    if feats is not None:  # a probe: the features of the held-out rows and of test
      x = {"val": self.probe_inputs(spec, feats, seed, val)[kept] if select else None,
           "test": self.probe_inputs(spec, test_feats)}
    t = self.cfg.train

    def evaluate(params):
      out = {}
      for name, (ds, truth, weak) in scored.items():
        logits = (loop.probe_logits(params, x[name]) if feats is not None else
                  self.trainer(spec).predict(params, ds, t.eval_batch_size, t.buckets,
                                             what="logits"))
        probs = metrics.softmax(logits)
        out[f"{name}_gt_acc"] = metrics.accuracy(probs, truth)
        out[f"{name}_gt_auroc"] = metrics.auroc(logits, truth)
        out[f"{name}_gt_loss"] = metrics.cross_entropy(logits, truth)
        if weak is not None:
          hard = weak.argmax(-1)
          out[f"{name}_weak_acc"] = metrics.accuracy(probs, hard)
          out[f"{name}_weak_auroc"] = metrics.auroc(logits, hard)
          out[f"{name}_weak_loss"] = metrics.cross_entropy(logits, weak)
      return out
    if not select:
      return loop.Evaluation(evaluate, self.cfg.curves_every)
    truth = labels is None or es.oracle
    metric = f"val_{'gt' if truth else 'weak'}_{es.metric}"
    return loop.Evaluation(evaluate, es.every, metric, "min" if es.metric == "loss" else "max")

  def predict(self, spec, trained: Stage, split: str, seed: int) -> Stage:
    """Logits and class probabilities of a train stage on a split; with the split's ground
    truth, the per-row correctness (what pooled intervals resample). AUROC ranks the logit
    margins: float32 probabilities saturate and tie."""
    probe = spec.mode == "probe"
    feats = self.features(spec, seed, split) if probe else None
    s = {"train": trained.key, "data": self.data.keys(seed)[split], "what": "logits",
         "features": feats.key if feats else None}
    ds = self.data.sets(seed)[split]

    def run():
      if probe:
        head = {"cls_head": self.rt.store.arrays("train", trained.key)["cls_head"]}
        logits = loop.probe_logits(head, self.probe_inputs(spec, feats, seed, split))
      else:
        tr = self.trainer(spec)
        logits = tr.predict(self.rt.params("train", trained.key, tr), ds,
                            self.cfg.train.eval_batch_size, self.cfg.train.buckets,
                            what="logits")
      probs = metrics.softmax(logits)
      correct = probs.argmax(-1) == ds.labels
      return Output(arrays={"logits": logits, "probs": probs, "correct": correct,
                            "labels": ds.labels}, metrics={
          "acc": float(correct.mean()), "auroc": metrics.auroc(logits, ds.labels)})
    deps = (trained,) + ((feats,) if feats else ())
    return self.graph.add(Stage("predict", s, f"predict:{trained.label}:{split}", run, deps,
                                cost=f"{len(ds)} rows", seeded=self.data.seeded(seed)))

  # ------------------------------------------------------------------------------ build
  def build(self) -> None:
    cfg = self.cfg
    gft_variants = (False, True) if cfg.generative_finetune.enabled else (False,)
    self._zero = {role: self.zero_shot(cfg[role], cfg.seeds[0]) for role in ("weak", "strong")}
    for seed in cfg.seeds:
      weak = self.train(cfg.weak, seed, "a_train", None, "xent", role="weak")
      weak_labels = self.predict(cfg.weak, weak, "b", seed)
      for gft in gft_variants:
        init = self.gft(cfg.strong, seed) if gft else None
        ceiling = self.train(cfg.strong, seed, "a_strong", None, "xent", role="ceiling",
                             init=init)
        for loss in cfg.losses:
          for method, student, chain, sup in self.students(seed, loss, weak_labels, init):
            self._add_row(seed, gft, loss, (cfg.weak, weak), ceiling, student, weak_labels,
                          {"test": self.predict(*sup, "test", seed)} if sup else None,
                          {"method": method, "chain": chain} if method else {})
        if not self.methods:
          continue
        for m in self.methods.students(seed, weak_labels, init):
          controlled = m.get("weak")
          extra = {"method": m["method"], "chain": m.get("chain", [
              controlled[0] if controlled else models.display_name(cfg.weak)]) + [
              models.display_name(cfg.strong)]}
          if controlled:
            extra["weak_name"] = controlled[0]
          self._add_row(seed, gft, m.get("loss", cfg.methods.loss), controlled[1] if controlled else
                        (cfg.weak, weak), ceiling, m["student"], m["labels"],
                        {"test": m["supervisor"]["test"]} if "supervisor" in m else None, extra)

  def _add_row(self, seed, gft, loss, weak, ceiling, student, labels, sup, extra) -> None:
    """A run to report: `weak` is (spec, train stage), or a controlled supervisor's
    {split: labels}; `labels` the labelling of B the student learnt; `sup` {"test": stage} of
    the supervisor whose labels it learnt when not the weak model (misfit is measured
    against it)."""
    cfg = self.cfg
    models_ = {"ceiling": (cfg.strong, ceiling), "student": (cfg.strong, student)}
    splits = ["test"] + self.evals + self.dev
    preds = {role: {split: self.predict(spec, st, split, seed) for split in splits}
             for role, (spec, st) in models_.items()}
    if isinstance(weak, dict):
      preds = {"weak": {s: weak[s] for s in ["test"] + self.dev}, **preds}
    else:
      models_ = {"weak": weak, **models_}
      preds = {"weak": {s: self.predict(*weak, s, seed) for s in splits}, **preds}
    if sup is not None:
      preds["supervisor"] = sup
    self._rows.append((seed, gft, loss, models_, preds, labels, extra))

  def students(self, seed: int, loss: str, weak_labels: Stage, init: Stage | None) -> list:
    """(method, student stage, chain of supervisors' names, (spec, stage) of its supervisor
    when not the weak model) for one seed and loss: the student on all of B's student rows;
    with bootstrap.via, the naive and the bootstrapped student on the last chunk of them."""
    cfg = self.cfg
    if not cfg.bootstrap.via:
      return [("", self.train(cfg.strong, seed, "b_student", weak_labels, loss,
                              role="student", init=init), [], None)]
    via = [options.model_entry(cfg.strong, e) for e in cfg.bootstrap.via]
    labels, chain = weak_labels, [models.display_name(cfg.weak)]
    for t, spec in enumerate(via):  # each model learns its predecessor's labels of its chunk
      mid = self.train(spec, seed, f"b{t + 1}", labels, loss, role="student")
      labels = self.predict(spec, mid, "b", seed)
      chain.append(models.display_name(spec))
    last = f"b{len(via) + 1}"
    strong = models.display_name(cfg.strong)
    return [("naive", self.train(cfg.strong, seed, last, weak_labels, loss, role="student",
                                 init=init), [chain[0], strong], None),
            ("bootstrap", self.train(cfg.strong, seed, last, labels, loss, role="student",
                                     init=init), chain + [strong], (via[-1], mid))]

  def check_data(self) -> None:
    """Every split a stage trains on or scores holds rows, both classes and one batch."""
    from w2s_jax.data import checks  # noqa: PLC0415
    t, names = self.cfg.train, self.data.splits.labels
    fitted = ("a_train", "a_strong", "b_student",
              *(f"b{t + 1}" for t in range(self.data.n_chunks)))  # bootstrapping's chunks
    for seed in self.cfg.seeds if self.data.per_seed else self.cfg.seeds[:1]:
      sets = self.data.sets(seed)
      used = {*fitted, "test", *self.evals} | ({"a_val", "b_val"} if self.data.n_val else set())
      name = (lambda n: f"{n} (seed {seed})") if self.data.per_seed else str  # noqa: E731
      checks.check_splits({name(n): sets[n] for n in used}, self.data.num_classes,
                          {name(n): t.batch_size for n in fitted}, label_names=names)

  def checkpoints(self) -> list:
    """(init, trainer) of every model that starts from a checkpoint (checked before training)."""
    return [(m.init, self.trainer(m)) for m in (self.cfg.weak, self.cfg.strong)
            if m.init != "scratch"]

  def rows(self) -> list[dict]:
    cfg, store, data = self.cfg, self.rt.store, self.data
    weak_name, strong_name = models.display_name(cfg.weak), models.display_name(cfg.strong)
    labels = data.shared["test"].labels
    zero = {}  # each model's zero-shot score, or why it has none
    for role, name in (("weak", weak_name), ("strong", strong_name)):
      st = self._zero[role]
      zero[name] = ({k: store.metrics("zero_shot", st.key)[k] for k in ("acc", "auroc", "acc_ci95")}
                    if st else {"why": "trained from scratch" if cfg[role].init == "scratch"
                                else data.zero_shot_why})
    out = []
    for seed, gft, loss, models_, preds, weak_labels, boot in self._rows:
      preds, boot = dict(preds), dict(boot)
      learnt = store.metrics("predict", weak_labels.key)  # the labels the student learnt
      weak = boot.pop("weak_name", weak_name)  # a controlled supervisor's name
      sup = preds.pop("supervisor", None)
      logits = {r: store.arrays("predict", p["test"].key)["logits"] for r, p in preds.items()}
      scores = metrics.score_run(logits["weak"], logits["student"], logits["ceiling"], labels,
                                 samples=cfg.bootstrap_samples, seed=seed)
      if sup is not None:  # misfit and agreement against the model whose labels it learnt
        own = store.arrays("predict", sup["test"].key)["logits"]
        scores["misfit_gain"] = metrics.misfit_gain(own, logits["student"], labels)
        scores["agreement_split"] = metrics.agreement_split(
            own.argmax(-1), logits["student"].argmax(-1), labels)
        scores["supervisor_acc"] = store.metrics("predict", sup["test"].key)["acc"]
      # Ranking quality too: a biased model can sit at the prior in accuracy and still order
      # the pairs (or rows) well.
      scores["pgr_auroc"] = metrics.pgr(scores["weak_auroc"], scores["student_auroc"],
                                        scores["ceiling_auroc"])
      group = [cfg.task.name, data.shared_keys["test"], weak, strong_name, loss] + (
          ["gft"] if gft else []) + ([boot["method"]] if boot.get("method") else [])
      out.append({
          **results.row_identity(group, seed, [p["test"] for p in preds.values()], cfg),
          "setting": "classification",
          "task": cfg.task.name, "data_key": data.shared_keys["test"], "weak": weak,
          "strong": strong_name, "supervisor": boot["chain"][-2] if boot else weak,
          **boot, "loss": loss, "seed": seed, "gft": gft,
          **scores, "seed_scope": cfg.seed_scope,
          # A student kept at the step that scored best on ground truth: an analysis (it reads
          # labels a weak-to-strong user does not have), marked in every table and figure.
          "oracle": bool(cfg.early_stopping.enabled and cfg.early_stopping.oracle),
          "prior": float(max(np.mean(labels == c) for c in range(data.num_classes))),
          "zero_shot": zero,
          "weak_label_acc": learnt["acc"],
          # A label filter's kept rows against the ground truth (methods.label_quality).
          **({"label_quality": {k: learnt[k] for k in ("kept", "precision", "recall", "changed",
                                                        "weak_acc")}} if "kept" in learnt else {}),
          "params": {"weak": models.param_count(self.model_cfg(cfg.weak)),
                     "strong": models.param_count(self.model_cfg(cfg.strong))},
          "eval_sets": {name.removeprefix("eval:"): {
              r: store.metrics("predict", p[name].key)["acc"] for r, p in preds.items()
              if name in p} for name in self.evals},
          "stage_keys": {r: st.key for r, (_, st) in models_.items()},
          "predict_keys": {r: p["test"].key for r, p in preds.items()},
          # The development slice's predictions: pooled in results.json, in no table.
          **({"dev_predict_keys": {r: p["dev"].key for r, p in preds.items()}} if self.dev
             else {}),
          "seconds": {r: store.metrics("train", st.key)["seconds"]
                      for r, (_, st) in models_.items()},
          # The step each role's parameters come from (-1: its last): every role is selected
          # alike (early_stopping.enabled) or none is.
          "selected_step": {r: store.metrics("train", st.key).get("best_step", -1)
                            for r, (_, st) in models_.items()},
          # The strong model with no fine-tuning (its zero-shot prompt) on the same test rows:
          # what a student's gain and the no-fine-tune PGR are paired against.
          "no_finetune_key": None if gft or not self._zero["strong"] else
          ["zero_shot", self._zero["strong"].key],
      })
    return out


def build(cfg, rt, graph) -> Builder:
  b = Builder(cfg, rt, graph)
  b.build()
  return b
