"""Reward modelling: a weak reward model supervises a strong one on preference pairs, with and
without generative fine-tuning of the strong model (paper section 5.2.2; docs/settings.md).

  --config=configs/reward_model.py:tiny     synthetic preference pairs, tiny models (CI, < 1 min)
  --config=configs/reward_model.py          offline, real data: BIG-bench multiemo sentences as
                                            pairs (right vs wrong sentiment), tiny-2 ->
                                            SmolLM2-135M, hhh_alignment as an extra evaluation set
  --config=configs/reward_model.py:pod      Anthropic/hh-rlhf, gpt2 -> gpt2-xl from the Hub
  --config=configs/reward_model.py:jsonl    your {"chosen", "rejected"} JSONL (task.train_file)

A pair's two texts share a batch; the reward head gives one scalar per text; the loss is
Bradley-Terry with SOFT targets (the supervisor's P(first preferred)). generative_finetune.enabled
makes every run report the strong stages without and with next-token pretraining on the task's
texts (labels never read).
"""
from w2s_jax.config import defaults


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
    # A from-scratch weak reward model is at chance on social_iqa pairs (0.49-0.56 with 2,000
    # training pairs) but learns sentiment pairs (0.59 with 1,000): BUILD_NOTES.md.
    c.task.name = "bigbench-multiemo-sentence-pairs"
    c.task.n_train, c.task.n_test = 2000, 400
    # A SmolLM2-135M step costs ~10 s per 16 pairs on 2 CPU cores: the ceiling and the students
    # train on 256 pairs each (batch 16, 2 epochs, lr 1e-4; 128 rows left SmolLM2's ceiling
    # below the weak model on single sentences); the weak model on all 1,000 pairs of A.
    c.task.n_strong_train = 256
    c.eval_tasks = ("bigbench-hhh_alignment",)
    c.tokenizer = "gguf:smollm2-135m"
    c.max_len, c.eval_max_len = 64, 128  # hhh: 134 of its 221 pairs fit 128 tokens
    c.train.update(batch_size=16, buckets=(32, 64, 128), eval_batch_size=32, log_every=4)
    c.weak.size, c.weak.lr = "tiny-2", 1e-3
    c.strong.init, c.strong.size, c.strong.lr = "gguf:smollm2-135m", "auto", 1e-4
    # Next-token loss on the sentences only: on "...Answer: positive" and "...Answer: negative"
    # alike it would teach indifference to the very label (BUILD_NOTES.md).
    c.generative_finetune.update(epochs=1.0, texts="prefix")
    c.seeds = (0, 1, 2)
  elif arg == "pod":
    c.task.name = "anthropic_hh"
    c.task.n_train, c.task.n_test = 40_000, 5_000
    c.eval_tasks = ("bigbench-hhh_alignment",)
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
