"""Weak-to-strong binary classification.

  --config=configs/nlp.py:tiny     synthetic task, byte tokenizer, tiny models: ~1 min on a CPU
  --config=configs/nlp.py:jsonl    your own {"text", "label"} JSONL files (set task.train_file)
"""
from w2s_jax.config import defaults


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
  elif arg == "jsonl":
    c.task.name = "jsonl"
    c.max_len = 256
    c.weak.size, c.strong.size = "tiny-2", "tiny-3"
    c.train.lr = 1e-3
    c.train.buckets = (32, 64, 128, 256)
  else:
    raise ValueError(f"configs/nlp.py: unknown variant {arg!r} (tiny | jsonl)")
  return c
