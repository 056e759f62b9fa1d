"""The weak-to-strong pipeline: weak supervisor, weak labels, strong ceiling, students, scores.

  gt(model)              model trained on A's ground truth; predicts test. The weak model's gt
                         stage (the supervisor) also predicts B: its soft predictions are the weak
                         labels; the strong model's gt stage is the ceiling.
  student(weak, strong)  strong model trained on B's weak labels with one loss; predicts test.
The strong models may train on the first `task.n_strong_train` rows of A and B only ("a_strong",
"b_strong"), so the ceiling and the students see equally many rows.
Stage keys hash everything that determines their outputs and nothing else, so a rerun skips
finished stages and changing only the student's loss reuses the weak labels and the ceiling.
"""
import dataclasses
import logging
import time

import jax
import numpy as np

from w2s_jax import distributed, metrics, report, sharding, stages, train
from w2s_jax.data import dataset as data_lib, tasks
from w2s_jax.data.tokenizers import get_tokenizer
from w2s_jax import models

log = logging.getLogger("w2s_jax")

# Config keys that change no stage output (logging, evaluation batching).
NOT_HASHED = ("log_every", "eval_batch_size", "checkpoint_every", "keep_checkpoints")


def hashed_train(tcfg) -> dict:
  """What a stage key hashes of a train config."""
  return {k: v for k, v in tcfg.to_dict().items() if k not in NOT_HASHED}


def loss_hp(cfg, loss: str) -> dict:
  """The hyper-parameters of student loss `loss` (config.loss.<name>; none for most)."""
  return cfg.loss[loss].to_dict() if loss in cfg.loss else {}

# Every XLA compilation of this process (jitted steps and small eager ops alike): a run should
# compile a handful of programs per stage, not one per batch.
COMPILES = {"n": 0}
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *_, **__: COMPILES.__setitem__("n", COMPILES["n"] + (
        name == "/jax/core/compile/backend_compile_duration")))


class Experiment:
  """Data, mesh and stage store of one run; `stage_*` methods compute or load cached stages."""

  def __init__(self, cfg, workdir: str):
    self.cfg, self.workdir = cfg, workdir
    self.tokenizer = get_tokenizer(cfg.tokenizer)
    self.splits = data_lib.load_splits(cfg.task, self.tokenizer, cfg.max_len, cfg.data_seed)
    self.pairwise = tasks.get(cfg.task.name).kind == "pairwise"
    self.num_classes = cfg.num_classes or len(self.splits.labels)
    self.evals = {f"eval:{name}": data_lib.load_eval(name, cfg.task, self.tokenizer,
                                                     cfg.eval_max_len or cfg.max_len)
                  for name in cfg.eval_tasks}
    self.data_keys = {name: self.dataset(name).key()
                      for name in ("a", "b", "test", "a_strong", "b_strong")}
    self.data_keys.update({name: ds.key() for name, ds in self.evals.items()})
    self.mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)
    self.rules = sharding.check_rules(cfg.rules)
    self.store = stages.StageStore(workdir)
    self.writer = report.MetricWriter(workdir) if distributed.is_main() else None
    self._trainers, self._model_cfgs, self._texts = {}, {}, None
    log.info("data: A %d, B %d, test %d examples (dropped as too long: %s); strong models train "
             "on %d of A and %d of B; %d classes; mesh %s", len(self.splits.a),
             len(self.splits.b), len(self.splits.test), self.splits.dropped,
             len(self.dataset("a_strong")), len(self.dataset("b_strong")),
             self.num_classes, dict(self.mesh.shape))

  # ------------------------------------------------------------------------------ helpers
  def model_cfg(self, spec):
    """The spec's ModelConfig, read once per (size, init): a checkpoint's config (a GGUF file's
    metadata) is parsed once per run, not once per stage spec."""
    k = (spec.size, spec.init)
    if k not in self._model_cfgs:
      mc = models.from_spec(spec, self.tokenizer.vocab_size)
      if self.tokenizer.vocab_size > mc.vocab_size:
        raise ValueError(f"tokenizer {self.cfg.tokenizer!r} has {self.tokenizer.vocab_size} "
                         f"ids, more than the vocabulary of {spec.init} ({mc.vocab_size})")
      self._model_cfgs[k] = mc
    return self._model_cfgs[k]

  def dataset(self, name: str) -> data_lib.Dataset:
    """A split by name: a, b, test, a_strong, b_strong (prefixes of A and B) or an eval set."""
    if name in self.evals:
      return self.evals[name]
    if name in ("a_strong", "b_strong"):
      ds, n = getattr(self.splits, name[0]), self.cfg.task.n_strong_train
      return ds.take(np.arange(min(n, len(ds)))) if n else ds
    return getattr(self.splits, name)

  def initial_params(self, spec, tr: train.Trainer, seed: int, gft: str | None = None) -> dict:
    """The model's starting point: its generative fine-tuning stage `gft` if given, else its
    checkpoint or a seeded initialisation."""
    if gft:
      return self.store.params("gft", gft, tr.abstract_params(), tr.param_shardings)
    return models.initial_params(spec.init, tr, seed)

  def trainer(self, spec) -> train.Trainer:
    lora = (spec.lora_rank, spec.lora_alpha, tuple(spec.lora_targets)) if spec.lora_rank else None
    k = (spec.size, spec.init, spec.remat, lora)
    if k not in self._trainers:
      self._trainers[k] = train.Trainer(self.model_cfg(spec), self.num_classes, self.mesh,
                                        self.rules, dtype=self.cfg.train.dtype, remat=spec.remat,
                                        attention=self.cfg.train.attention, lora=lora,
                                        pairwise=self.pairwise)
    return self._trainers[k]

  def loss_hp(self, loss: str) -> dict:
    return loss_hp(self.cfg, loss)

  def _spec(self, kind, model, seed, **extra) -> dict:
    mc = self.model_cfg(model)
    return {
        "kind": kind, "seed": seed, "num_classes": self.num_classes,
        "model": {"size": model.size, "init": model.init, "mode": model.mode,
                  "lora": [model.lora_rank, model.lora_alpha, list(model.lora_targets)]
                  if model.lora_rank else None,
                  **dataclasses.asdict(mc),
                  "checkpoint": models.fingerprint(model.init),
                  "lr": train.learning_rate(self.cfg.train, mc, model.lr)},
        "train": hashed_train(self.cfg.train),
        "tokenizer": self.cfg.tokenizer, **extra}

  def _train_and_predict(self, kind, key, spec, model, seed, train_split, targets, loss,
                         eval_splits):
    """Train `model` on a split (by name, see `dataset`) with soft `targets`; predict eval splits
    and the extra evaluation sets."""
    tr = self.trainer(model)
    eval_splits = list(eval_splits) + list(self.evals)
    label = f"{kind}:{models.display_name(model)}" + (
        f":{loss}" if kind == "student" else "") + (":gft" if spec.get("gft") else "") + \
        f":s{seed}"
    t0, compiles, traces = time.time(), COMPILES["n"], dict(tr.traces)
    fit_args = dict(loss_name=loss, loss_hp=self.loss_hp(loss), tcfg=self.cfg.train,
                    lr=spec["model"]["lr"], seed=seed, writer=self.writer, label=label)
    if model.mode == "probe":  # the body is frozen: its features were computed once
      features = self.store.arrays("features", spec["features"])
      rows = features[train_split.removesuffix("_strong")][:len(targets)]  # a_strong: A's prefix
      result = train.fit_probe(rows, targets, **fit_args)
      arrays = {name: train.probe_predict(result.params, features[name]) for name in eval_splits}
    else:
      result = train.fit(tr, self.initial_params(model, tr, seed, spec.get("gft")),
                         self.dataset(train_split), targets,
                         ckpt_dir=self.store.ckpt_dir(kind, key), **fit_args)
      arrays = {name: tr.predict(result.params, self.dataset(name),
                                 self.cfg.train.eval_batch_size, self.cfg.train.buckets)
                for name in eval_splits}
    test = self.splits.test.labels
    m = {"test_acc": metrics.accuracy(arrays["test"], test),
         "test_auroc": metrics.auroc(arrays["test"], test), "steps": result.steps,
         "train_seconds": result.seconds, "seconds": time.time() - t0,
         "final_train_loss": result.history[-1]["loss"], "resumed_from": result.resumed_from,
         "compiles": {"all": COMPILES["n"] - compiles,
                      **{k: tr.traces[k] - traces[k] for k in traces}},
         **{f"{name}_acc": metrics.accuracy(arrays[name], self.evals[name].labels)
            for name in self.evals}}
    self.store.save(kind, key, spec, params=result.params, arrays=arrays, metrics=m)
    log.info("[%s] done: test acc %.4f in %.1fs, %d programs compiled (%d train steps) (stage %s)",
             label, m["test_acc"], m["seconds"], m["compiles"]["all"], m["compiles"]["train"], key)

  def stage_features(self, model, seed) -> str:
    """Last-token features of the (untrained) model on every split, for linear probes: one
    forward pass serves every probe of this model."""
    spec = self._spec("features", model, seed, data=self.data_keys)
    del spec["train"]  # no training happens here
    del spec["model"]["lr"], spec["model"]["mode"]
    if model.init != "scratch":
      spec["seed"] = None  # a checkpoint's features do not depend on the seed
    key = stages.stage_key(spec)
    if not self.store.done("features", key):
      t0 = time.time()
      tr = self.trainer(model)
      params = self.initial_params(model, tr, seed)
      arrays = {name: tr.predict(params, self.dataset(name),
                                 self.cfg.train.eval_batch_size, self.cfg.train.buckets,
                                 what="features") for name in ("a", "b", "test", *self.evals)}
      self.store.save("features", key, spec, arrays=arrays,
                      metrics={"seconds": time.time() - t0})
      log.info("[features:%s] %d examples in %.1fs (stage %s)", models.display_name(model),
               sum(len(a) for a in arrays.values()), time.time() - t0, key)
    return key

  def _model_spec(self, kind, model, seed, **extra) -> dict:
    """_spec, plus the features stage a probe reads (so the probe's key depends on it)."""
    if model.mode == "probe":
      extra["features"] = self.stage_features(model, seed)
    return self._spec(kind, model, seed, **extra)

  # ------------------------------------------------------------------------------- stages
  def stage_gft(self, model, seed) -> str:
    """Generative fine-tuning: `model` trained with next-token loss on the texts of the strong
    models' rows of A and B (both texts of a pair); the labels are never read (the key hashes
    the texts only)."""
    g = self.cfg.generative_finetune
    if self._texts is None:  # every strong stage asks for the key: build the texts once
      texts = data_lib.text_rows(self.dataset("a_strong"), self.dataset("b_strong"))
      self._texts = (*texts, texts[0].key())  # the key hashes tokens; the labels are zeros
    texts, targets, texts_key = self._texts
    spec = self._spec("gft", model, seed, texts=texts_key, gft=g.to_dict())
    key = stages.stage_key(spec)
    if self.store.done("gft", key):
      return key
    tr, t0 = self.trainer(model), time.time()
    tcfg = train.with_overrides(self.cfg.train, epochs=g.epochs, micro_batch_size=0,
                                batch_size=g.batch_size or self.cfg.train.batch_size)
    label = f"gft:{models.display_name(model)}:s{seed}"
    result = train.fit(tr, self.initial_params(model, tr, seed), texts, targets, loss_name="xent",
                       loss_hp={}, tcfg=tcfg, lr=g.lr or spec["model"]["lr"], seed=seed,
                       writer=self.writer, label=label, ckpt_dir=self.store.ckpt_dir("gft", key))
    self.store.save("gft", key, spec, params=result.params, metrics={
        "seconds": time.time() - t0, "steps": result.steps, "texts": len(texts),
        "final_train_loss": result.history[-1]["loss"]})
    log.info("[%s] %d texts, next-token loss %.3f -> %.3f in %.0fs (stage %s)", label, len(texts),
             result.history[0]["loss"], result.history[-1]["loss"], time.time() - t0, key)
    return key

  def stage_gt(self, model, seed, gft: bool = False, supervisor: bool = False) -> str:
    """Model trained on A's ground truth and scored on test. Returns the stage key.
    `supervisor`: the weak model: trains on all of A and also predicts B (the weak labels);
    otherwise a ceiling: trains on the strong models' rows of A. `gft`: start from the model's
    generative fine-tuning stage."""
    train_split, eval_splits = ("a", ["test", "b"]) if supervisor else ("a_strong", ["test"])
    spec = self._model_spec("gt", model, seed, loss="xent",
                      data={"train": self.data_keys[train_split],
                            "eval": [self.data_keys[name] for name in eval_splits]},
                      **self._evals_and_gft(model, seed, gft))
    key = stages.stage_key(spec)
    if self.store.done("gt", key):
      log.info("[gt:%s:s%d] cached (stage %s)", models.display_name(model), seed, key)
    else:
      self._train_and_predict("gt", key, spec, model, seed, train_split, data_lib.one_hot(
          self.dataset(train_split).labels, self.num_classes), "xent", eval_splits)
    return key

  def _evals_and_gft(self, model, seed, gft: bool) -> dict:
    """Spec entries for the extra evaluation sets and the generative fine-tuning stage (only
    when present, so that keys of runs without them are unchanged)."""
    out = {"gft": self.stage_gft(model, seed)} if gft else {}
    if self.evals:
      out["eval_sets"] = {name: self.data_keys[name] for name in self.evals}
    return out

  def stage_student(self, weak_key, model, loss, seed, gft: bool = False) -> str:
    """Strong model trained on B's weak labels (the weak gt stage's soft predictions)."""
    spec = self._model_spec("student", model, seed, loss=loss,
                      loss_hp=self.loss_hp(loss), weak_labels=weak_key,
                      data={"train": self.data_keys["b_strong"], "eval": [self.data_keys["test"]]},
                      **self._evals_and_gft(model, seed, gft))
    key = stages.stage_key(spec)
    if self.store.done("student", key):
      log.info("[student:%s:%s:s%d] cached (stage %s)", models.display_name(model), loss, seed,
               key)
    else:
      weak_labels = self.store.arrays("gt", weak_key)["b"][:len(self.dataset("b_strong"))]
      self._train_and_predict("student", key, spec, model, seed, "b_strong", weak_labels, loss,
                              ["test"])
    return key


def run(cfg, workdir: str) -> list[dict]:
  """All (seed, loss) runs of the config; returns the result rows (also in results.json)."""
  compiles = COMPILES["n"]
  exp = Experiment(cfg, workdir)
  test_labels = exp.splits.test.labels
  weak, strong = models.display_name(cfg.weak), models.display_name(cfg.strong)
  rows = []
  gft_variants = (False, True) if cfg.generative_finetune.enabled else (False,)
  stage_keys = {}  # each stage once per run: (seed), (seed, gft), (seed, gft, loss)
  right = {}  # (loss, gft) -> per seed: (weak, student, ceiling) correctness on test
  for seed, gft, loss in ((s, g, l) for s in cfg.seeds for g in gft_variants for l in cfg.losses):
    if seed not in stage_keys:
      stage_keys[seed] = exp.stage_gt(cfg.weak, seed, supervisor=True)
    if (seed, gft) not in stage_keys:
      stage_keys[seed, gft] = exp.stage_gt(cfg.strong, seed, gft)
    keys = {"weak": stage_keys[seed], "ceiling": stage_keys[seed, gft]}
    keys["student"] = exp.stage_student(keys["weak"], cfg.strong, loss, seed, gft)
    kinds = {"weak": "gt", "ceiling": "gt", "student": "student"}
    probs = {n: exp.store.arrays(kinds[n], k)["test"] for n, k in keys.items()}
    m = {n: exp.store.metrics(kinds[n], k) for n, k in keys.items()}
    scores = metrics.score_run(probs["weak"], probs["student"], probs["ceiling"], test_labels,
                               samples=cfg.bootstrap_samples, seed=seed)
    right.setdefault((loss, gft), []).append(
        [probs[n].argmax(-1) == test_labels for n in ("weak", "student", "ceiling")])
    rows.append({
        "id": "|".join(str(x) for x in (cfg.task.name, exp.data_keys["test"], weak, strong,
                                        loss, seed) + (("gft",) if gft else ())),
        "task": cfg.task.name, "data_key": exp.data_keys["test"], "weak": weak,
        "strong": strong, "loss": loss, "seed": seed, "gft": gft, **scores,
        "eval_sets": {name: {n: v[f"{name}_acc"] for n, v in m.items()} for name in exp.evals},
        "stage_keys": keys, "seconds": {n: v["seconds"] for n, v in m.items()},
    })
  pooled = [{"task": cfg.task.name, "weak": weak, "strong": strong, "loss": loss, "gft": gft,
             **metrics.pooled_pgr(r, samples=cfg.bootstrap_samples)}
            for (loss, gft), r in right.items()]
  if distributed.is_main():
    path = report.write_results(workdir, rows, pooled)
    log.info("results: %s; %d programs compiled in this run", path, COMPILES["n"] - compiles)
    print(report.summary_table(rows, pooled), flush=True)
  distributed.barrier("results written")
  return rows
