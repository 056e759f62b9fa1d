"""Reward modelling: a weak reward model supervises a strong one on preference pairs, with and
without generative fine-tuning of the strong model (paper section 5.2.2).

  --config=configs/reward_model.py:tiny     synthetic preference pairs, tiny models (CI, < 1 min)
  --config=configs/reward_model.py          offline, real data: BIG-bench social_iqa pairs
                                            (better vs other answer), tiny-2 -> SmolLM2-135M,
                                            hhh_alignment (221 pairs) as an extra evaluation set
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
    c.task.name = "bigbench-social_iqa-pairs"
    c.task.n_train, c.task.n_test = 1000, 500
    c.eval_tasks = ("bigbench-hhh_alignment",)
    c.tokenizer = "gguf:smollm2-135m"
    c.max_len = 128
    c.train.update(buckets=(64, 128), eval_batch_size=32, log_every=5)
    c.weak.size, c.weak.lr = "tiny-2", 1e-3
    c.strong.init, c.strong.size = "gguf:smollm2-135m", "auto"
    c.generative_finetune.update(epochs=1.0)
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
