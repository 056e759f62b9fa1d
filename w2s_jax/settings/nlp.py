"""The NLP setting: weak-to-strong on a text classification task or on reward pairs (the
paper's sections 4.1 and 4.3.3). Its stages are built by w2s_jax/pipeline.py; its keys are the
task, the extra evaluation sets, generative fine-tuning, bootstrapping through intermediate
models and the methods beyond the paper (w2s_jax/methods.py).
"""
import ml_collections

from w2s_jax import assets, losses
from w2s_jax.data import tasks
from w2s_jax.errors import ConfigError
from w2s_jax.options import check_growing, check_ranges, model_entry, require

ROWS = "classification"


def defaults(c) -> None:
  c.eval_max_len = 0  # the same for the rows of `eval_tasks` (0: max_len)
  c.num_classes = 0  # 0: from the task's label set
  c.task = ml_collections.ConfigDict(dict(
      name="synthetic",  # a key of w2s_jax.data.tasks.all_tasks()
      train_file="", test_file="",  # jsonl, or data files for a local `hf` builder
      hf_path="", hf_name="", hf_revision="", train_split="train", test_split="test",
      tfds_name="", tfds_data_dir="",  # task "tfds": a prepared (array_record) TFDS dataset
      text_field="text", label_field="label",
      labels=("0", "1"),  # label names for jsonl / hf (rows may use the index or the name)
      n_train=0, n_test=0,  # 0: all
      # Rows held out of the training rows as a development slice (0: none), the same for every
      # seed: every model is scored there (`python -m w2s_jax.report WORKDIR --dev`) and no table
      # reports it. Choose designs on it, never on test.
      n_dev=0,
      # Rows of A (ground truth) and of B (weak labels) the STRONG models train on: the first
      # n of each (0: all). The weak model still trains on all of A and labels all of B; the
      # ceiling and the students see equally many rows. For budgets where the strong stages
      # dominate the cost (a pretrained strong model on a CPU).
      n_strong_train=0,
      test_frac=0.2,  # share of train held out when the task has no test split
      balance=False,  # downsample to equal class counts
      synthetic_seed=0, negation_rate=0.3, synthetic_items=9,
      format_seed=0,  # formatters' randomness (which wrong answer pairs with a question)
      # chat tasks (ultrafeedback, anthropic_hh): "" plain text | "model" (the tokenizer's own
      # chat template) | a tokenizer spec (gguf:... | hf:... | file:...) | a Jinja template
      chat_template="",
  ))
  c.eval_tasks = ()  # extra evaluation sets: every row of these tasks, scored for every model
  # Generative fine-tuning of the STRONG model before its ceiling and its students: next-token
  # loss on the texts of A and B (labels never read). Enabled, a run reports every strong stage
  # both without and with it.
  c.generative_finetune = ml_collections.ConfigDict(dict(
      enabled=False, epochs=1.0,
      # both: every text of a pair; prefix: the part a pair's texts share (for pairs built from
      # a classification task, the text without its answer: no loss on the label words).
      texts="both",
      lr=0.0,  # 0: the strong model's fine-tuning learning rate
      batch_size=0,  # 0: train.batch_size
  ))
  # Bootstrapping a classification pair through intermediate models (entries as in
  # sweep.models, growing from weak to strong; the strong model's settings): B's student rows
  # are cut into len(via) + 1 chunks; the first intermediate model learns the weak labels of
  # chunk 1, each next model its predecessor's labels of the next chunk, and the strong model
  # the last one's labels of the last chunk (the bootstrapped student), beside a naive student
  # on the weak labels of the same last chunk. Rows carry method naive | bootstrap.
  c.bootstrap = ml_collections.ConfigDict(dict(via=()))
  # Methods beyond the paper's losses (w2s_jax/methods.py, docs/methods.md), classification
  # only; each adds students trained with `loss` on B's student rows, paired against naive xent
  # (which `losses` must hold). filters: knn_relabel | knn_filter | logreg_relabel |
  # logreg_filter | topo_filter (EleutherAI/w2s: a probe on the strong model's pretrained
  # features of B rebuilds the weak labels or drops the `contamination` share that disagree
  # most). ensembles: bagged | specialists (`n_supervisors` weak models on bootstrap resamples
  # of A, merged by `combine` mean | vote; or each on one token cluster of A, asked about its
  # cluster's rows). supervisors: target_acc | quirky (controlled supervisors from the ground
  # truth: right on exactly `target_acc` of the rows at random, or wrong on the `quirk_share`
  # longest rows), each with its own naive student, and each filter applied to its labels.
  c.methods = ml_collections.ConfigDict(dict(
      filters=(), ensembles=(), supervisors=(), loss="xent",
      contamination=0.1, knn_k=20, logreg_l2=1e-3, topo_k_cc=20, topo_k_zeta=20,
      n_supervisors=4, combine="mean", target_acc=0.7, quirk_share=0.3))
  # Probes read one forward pass that keeps every layer's features (float16, N x layers x d per
  # split): probes on every depth (model n_layers) of one checkpoint share it.
  c.features_all_layers = False


RANGES = {
    "task.n_train": (0, "0: all"), "task.n_test": (0, "0: all"),
    "task.n_dev": (0, "0: no development slice"),
    "task.n_strong_train": (0, "0: all rows"), "task.synthetic_seed": (0, ""),
    "task.negation_rate": (0, ""),
    "task.synthetic_items": (3, "items per synthetic text"), "task.format_seed": (0, ""),
    "eval_max_len": (0, "0: max_len"),
    "generative_finetune.epochs<": (0, ""), "generative_finetune.lr": (0, "0: the strong lr"),
    "generative_finetune.batch_size": (0, "0: train.batch_size"),
    "methods.contamination": (0, ""), "methods.knn_k<": (0, ""), "methods.logreg_l2": (0, ""),
    "methods.topo_k_cc<": (0, ""), "methods.topo_k_zeta<": (0, ""),
    "methods.n_supervisors<": (1, "ensembles of two or more"), "methods.target_acc": (0, ""),
    "methods.quirk_share": (0, ""),
}


def validate(cfg, devices=None) -> None:
  check_ranges(cfg, RANGES)
  t = cfg.train
  require(cfg.num_classes == 0 or cfg.num_classes >= 2, "num_classes",
          f"0 (the task's label set) or >= 2, got {cfg.num_classes}")
  require(cfg.task.negation_rate <= 1, "task.negation_rate", "must be in [0, 1]")
  require(0 < cfg.task.test_frac < 1, "task.test_frac", "must be in (0, 1)")
  from w2s_jax.data import chat  # noqa: PLC0415  (a chat template's checks read tokenizers)
  problem = chat.option_problem(cfg.task.chat_template, cfg.tokenizer, cfg.task.name)
  require(problem is None, "task.chat_template", problem or "")
  require(cfg.task.name in tasks.all_tasks(), "task.name",
          f"unknown task {cfg.task.name!r}; known: {sorted(tasks.all_tasks())}")
  check_growing([cfg.weak, cfg.strong], ["weak", "strong"])
  if cfg.bootstrap.via:
    require(not cfg.sweep.models, "bootstrap.via",
            "bootstraps one (weak, strong) pair: not with sweep.models")
    try:
      via = [model_entry(cfg.strong, e) for e in cfg.bootstrap.via]
    except ConfigError as e:
      raise ConfigError(f"config key 'bootstrap.via': {e}") from None
    check_growing([cfg.weak, *via, cfg.strong],
                  ["weak", *(f"bootstrap.via[{i}]" for i in range(len(via))), "strong"])
  pairwise = tasks.all_tasks()[cfg.task.name].kind == "pairwise"
  _methods(cfg, pairwise)
  for key in ("weak", "strong"):
    require(not (pairwise and cfg[key].mode == "probe"), f"{key}.mode",
            "reward models (pairwise tasks) are fine-tuned, not probed")
  for name in cfg.eval_tasks:
    require(name in tasks.all_tasks() and (tasks.all_tasks()[name].kind == "pairwise") == pairwise,
            "eval_tasks", f"{name!r} is not a known task of the same kind as task.name")
  g = cfg.generative_finetune
  require(g.texts in ("both", "prefix"), "generative_finetune.texts", "both | prefix")
  require(not (g.enabled and cfg.strong.mode == "probe"), "generative_finetune.enabled",
          "a probed strong model is frozen: generative fine-tuning would not reach its probe")
  require(not cfg.eval_tasks or t.buckets[-1] >= cfg.eval_max_len, "train.buckets",
          f"the largest bucket {t.buckets[-1]} must hold eval_max_len={cfg.eval_max_len}")


def _methods(cfg, pairwise: bool) -> None:
  from w2s_jax import methods  # noqa: PLC0415
  m = cfg.methods
  for key, known in (("filters", methods.FILTERS), ("ensembles", methods.ENSEMBLES),
                    ("supervisors", methods.SUPERVISORS)):
    for name in m[key]:
      require(name in known, f"methods.{key}", f"unknown {name!r}; known: {sorted(known)}")
  if not (m.filters or m.ensembles or m.supervisors):
    return
  require(not pairwise, "methods", "the methods are for classification tasks (not reward pairs)")
  require("xent" in cfg.losses, "losses", "methods are paired against naive xent: add 'xent'")
  require(m.loss in losses.LOSSES, "methods.loss", f"unknown loss {m.loss!r}")
  require(not cfg.bootstrap.via, "methods", "not with bootstrap.via (one kind of student row)")
  require(m.combine in ("mean", "vote"), "methods.combine", "mean | vote")
  require(m.contamination < 1 and m.target_acc <= 1 and m.quirk_share < 1, "methods",
          "contamination and quirk_share must be < 1, target_acc <= 1")


def needs(cfg) -> dict:
  """{asset: the config key that needs it}: the task's and the eval sets' data, the models'."""
  out = {}
  if cfg.task.name in tasks.all_tasks():
    out.update(dict.fromkeys(tasks.get(cfg.task.name).assets,
                             f"--config.task.name (here {cfg.task.name!r})"))
  for e in cfg.eval_tasks:
    if e in tasks.TASKS:
      for name in tasks.get(e).assets:
        out.setdefault(name, "--config.eval_tasks=()")
  for role in ("weak", "strong"):
    for name, knob in assets.checkpoint_assets(cfg[role].init, f"{role}.init").items():
      out.setdefault(name, knob)
  return out


def build(cfg, rt, graph):
  from w2s_jax import pipeline  # noqa: PLC0415  (the engine, imported when a run builds)
  return pipeline.build(cfg, rt, graph)


def program(cfg, mesh):
  """The dry run's program: the strong model's train step as `loop.fit` runs it (soft targets,
  the first student loss), or its features forward when it is probed. Shapes from the size
  table or the checkpoint's config.json; nothing is fetched."""
  from w2s_jax import dry_run, models, sharding, train  # noqa: PLC0415
  from w2s_jax.data import dataset as data_lib  # noqa: PLC0415
  from w2s_jax.data.tokenizers import ByteTokenizer  # noqa: PLC0415
  spec, t = cfg.strong, cfg.train
  vocab = ByteTokenizer.vocab_size if cfg.tokenizer == "byte" else 50257
  mc = models.from_spec(spec, vocab, fetch=False)
  task = tasks.get(cfg.task.name)
  pairwise = task.kind == "pairwise"
  classes = 2 if pairwise else cfg.num_classes or len(task.labels(cfg.task))
  lora = (spec.lora_rank, spec.lora_alpha, tuple(spec.lora_targets)) if spec.lora_rank else None
  tr = train.Trainer(mc, classes, mesh, sharding.check_rules(cfg.rules), dtype=t.dtype,
                     remat=spec.remat, attention=t.attention, lora=lora, pairwise=pairwise)
  length = data_lib.bucket_length(cfg.max_len, t.buckets)
  name = models.display_name(spec)
  if spec.mode == "probe":
    return dry_run.transformer_features(cfg, tr, name=name, length=length)
  return dry_run.transformer_train(cfg, tr, name=name, remat=spec.remat, remat_key="strong.remat",
                                   objective="soft", loss_name=cfg.losses[0], length=length)


def tables(runs: list, pool: list, baselines: list) -> list:
  from w2s_jax import methods, tables as tables_lib  # noqa: PLC0415
  quality = methods.quality_lines(runs)  # the label filters' precision, the ensembles' scores
  return ([tables_lib.summary_table(runs, pool, baselines)] if runs else []) + (
      ["\n".join(quality)] if quality else [])


def figures(pool: list, runs: list, out) -> list:
  from w2s_jax import figures as figures_lib  # noqa: PLC0415  (matplotlib only when drawing)
  return figures_lib.accuracy_figures(pool, out) if pool else []
