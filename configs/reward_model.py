"""Reward modelling: a weak reward model supervises a strong one on preference pairs, with and
without generative fine-tuning of the strong model (paper section 5.2.2; docs/settings.md).

  --config=configs/reward_model.py:tiny     synthetic preference pairs, tiny models (CI, < 1 min)
  --config=configs/reward_model.py          offline, real data: VADER's rated sentences as
                                            pairs (right vs wrong sentiment, balanced), tiny-2 ->
                                            SmolLM2-135M's first 16 layers, 3 seeds, with and
                                            without generative fine-tuning
  --config=configs/reward_model.py:pod      Anthropic/hh-rlhf, gpt2 -> gpt2-xl from the Hub
  --config=configs/reward_model.py:jsonl    your {"chosen", "rejected"} JSONL (task.train_file)

A pair's two texts share a batch; the reward head gives one scalar per text; the loss is
Bradley-Terry with SOFT targets (the supervisor's P(first preferred)). generative_finetune.enabled
makes every run report the strong stages without and with next-token pretraining on the task's
texts (labels never read).
"""
from w2s_jax.config import defaults

VARIANTS = ("tiny", "default", "pod", "jsonl")


def get_config(arg: str = "default"):
  c = defaults()
  c.losses = ("xent", "logconf")
  c.generative_finetune.enabled = True
  if arg == "tiny":
    c.task.name = "synthetic-pairs"
    c.task.n_train, c.task.n_test = 1200, 400
    c.max_len = 32
    c.weak.size, c.strong.size = "tiny-1", "tiny-llama-2"
    c.train.update(lr=3e-4, epochs=2.0, buckets=(16, 32), eval_batch_size=200, log_every=20)
    c.generative_finetune.update(epochs=1.0, lr=1e-3)
    c.bootstrap_samples = 200
  elif arg == "default":
    # (right, wrong) answer pairs: a sentence with its right vs its wrong sentiment, as many
    # positive as negative sentences (a reward model that always prefers one answer scores
    # chance). A from-scratch weak reward model learns sentiment pairs from 3,000 pairs but not
    # multiple-choice ones (social_iqa: chance): BUILD_NOTES.md.
    c.task.name = "vader-sentiment-pairs"
    c.task.n_train, c.task.n_test = 6000, 400
    # A development slice for choices (weak epochs, strong lr), never reported beside test.
    c.task.n_dev = 200
    # The strong model is SmolLM2-135M's first 16 of 30 layers: probes read its layer 16 as well
    # as its last (multiemo 0.874 vs 0.871) at half the cost of a step (~13 s per 16 pairs on
    # one core). The ceiling and the students train on 256 pairs each (batch 16, 2 epochs, lr
    # 1e-4); the weak model on all 3,000 pairs of A.
    c.task.n_strong_train = 256
    c.tokenizer = "gguf:smollm2-135m"
    c.max_len = 64  # 99.7% of VADER's sentences fit with their answer
    c.train.update(batch_size=16, buckets=(32, 64), eval_batch_size=32, log_every=4)
    c.weak.size, c.weak.lr = "tiny-2", 1e-3
    # 4 epochs: at 2 the weak model's choices depend on float rounding (the same stage key gave
    # 0.505 or 0.682 on one seed). Checked on the 200-pair dev slice, per seed: 4 epochs
    # 0.645 / 0.650 / 0.640, 8 epochs 0.595 / 0.635 / 0.625 (BUILD_NOTES.md).
    c.schedules.weak.epochs = 4.0
    c.strong.update(init="gguf:smollm2-135m", size="auto", lr=1e-4, n_layers=16)
    # The confidence loss needs hundreds of warmup steps (BUILD_NOTES.md), more than these
    # 32-step students have: xent only.
    c.losses = ("xent",)
    # Next-token loss on the sentences only: on "...Answer: positive" and "...Answer: negative"
    # alike it would teach indifference to the very label (BUILD_NOTES.md).
    c.generative_finetune.update(epochs=1.0, texts="prefix")
    c.seeds = (0, 1, 2)
  elif arg == "pod":
    c.task.name = "anthropic_hh"
    c.task.n_train, c.task.n_test = 40_000, 5_000
    # BIG-bench's hhh_alignment (221 pairs) is an extra evaluation set for users who hold its
    # sdist: --config.eval_tasks=bigbench-hhh_alignment with W2S_BIGBENCH_SDIST set.
    c.tokenizer = "hf:openai-community/gpt2"
    c.max_len = 512
    c.weak.init, c.weak.size = "hf:openai-community/gpt2", "auto"
    c.strong.init, c.strong.size = "hf:openai-community/gpt2-xl", "auto"
    c.strong.remat = "full"
    c.train.update(dtype="bfloat16", buckets=(128, 256, 512), eval_batch_size=64)
    c.seeds = (0, 1, 2)
  elif arg == "jsonl":
    c.task.name = "jsonl-pairs"
    c.max_len = 256
    c.weak.size, c.strong.size = "tiny-2", "tiny-3"
    c.train.update(lr=1e-3, buckets=(64, 128, 256))
  else:
    raise ValueError(f"configs/reward_model.py: unknown variant {arg!r} "
                     "(default | tiny | pod | jsonl)")
  return c
