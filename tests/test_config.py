"""The whole config is validated before work starts, with errors that name the key."""
import json

import pytest

from w2s_jax import config as config_lib, sweep
from w2s_jax.assets import __main__ as assets_cli


@pytest.mark.asset
def test_shipped_configs_validate(nlp_config):
  for variant in ("tiny", "jsonl", "offline"):  # offline reads SmolLM2's GGUF (cached once)
    config_lib.validate(nlp_config(variant), 8)


@pytest.mark.slow
@pytest.mark.asset
def test_reproduce_variants_plan_every_pair_of_the_depth_ladder(nlp_config, tmp_path):
  """The probe ladder on this CPU and its fully fine-tuned twin for an accelerator: 10 pairs x
  3 tasks, every point valid, nothing run."""
  from w2s_jax import experiment  # noqa: PLC0415
  for variant, mode in (("reproduce", "probe"), ("reproduce_gpu", "full")):
    configs = sweep.expand(nlp_config(variant))
    assert len(configs) == 30 and {c.strong.mode for c in configs} == {mode}
  _, graph, _ = experiment.plan(nlp_config("reproduce"), str(tmp_path))
  # 5 rungs x 3 tasks, each scored zero-shot once; one all-layers pass per split and task
  assert graph.counts()["zero_shot"] == 15 and graph.counts()["features"] == 12


HUB_VARIANTS = {"nlp:pod_gpt2", "nlp:pod_qwen", "nlp:sweep_gpt2", "reward_model:pod",
                "chess_bootstrap:pod", "vision:pod"}
PLANNED_ABOVE = {"nlp:reproduce"}


@pytest.mark.slow
@pytest.mark.asset
@pytest.mark.parametrize("spec", [s for s in assets_cli.every_variant()
                                  if s not in HUB_VARIANTS | PLANNED_ABOVE])
def test_every_variant_without_the_hub_plans_from_an_empty_cache(spec, tmp_path, monkeypatch):
  """`--plan` fetches what the variant needs (W2S_CACHE is empty in CI) and builds its graph."""
  from w2s_jax import experiment  # noqa: PLC0415
  cfg = assets_cli.config_of(spec)
  with cfg.unlocked():
    if cfg.task.name in ("jsonl", "jsonl-pairs"):  # the user's file
      path = tmp_path / "rows.jsonl"
      row = (lambda i: {"chosen": f"a b {i}", "rejected": f"b a {i}"}) if (  # noqa: E731
          cfg.task.name == "jsonl-pairs") else (lambda i: {"text": f"a b {i}", "label": i % 2})
      path.write_text("".join(json.dumps(row(i)) + "\n" for i in range(40)))
      cfg.task.train_file = str(path)
    if cfg.experiment == "vision" and cfg.vision.source.startswith("folder:"):  # the user's
      from PIL import Image  # noqa: PLC0415
      for c in ("a", "b"):
        (tmp_path / "images" / c).mkdir(parents=True)
        for i in range(20):
          Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / "images" / c / f"{i}.png")
      cfg.vision.update(source=f"folder:{tmp_path / 'images'}", n_test=10)
  assert len(experiment.plan(cfg, str(tmp_path / "w"))[1]) > 0


@pytest.mark.parametrize("variant", ["pod_gpt2", "pod_qwen", "sweep_gpt2"])
def test_pod_variants_validate_without_the_hub_from_the_size_table(variant, nlp_config,
                                                                   monkeypatch):
  cfg = nlp_config(variant)
  assert cfg.weak.init.startswith("hf:") and cfg.strong.init.startswith("hf:")
  assert cfg.task.name == "sciq" and len(cfg.seeds) == 3 and cfg.train.dtype == "bfloat16"
  import huggingface_hub  # noqa: PLC0415

  def no_download(*args, local_files_only=False, **kw):
    assert local_files_only, "config validation tried to download"
    raise FileNotFoundError("not cached")
  monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
  config_lib.validate(cfg, 8)  # shapes from the size table: gpt2-xl, qwen2.5-7b
  cfg.strong.init = "hf:some-org/unknown-model"
  with pytest.raises(config_lib.ConfigError, match="'strong.init'.*shapes are unknown without "
                     "fetching.*size-table name"):
    config_lib.validate(cfg, 8)


def test_hub_ids_map_to_size_table_names():
  from w2s_jax.models.sizes import size_of_checkpoint  # noqa: PLC0415
  assert size_of_checkpoint("openai-community/gpt2-xl") == "gpt2-xl"
  assert size_of_checkpoint("meta-llama/Llama-3.1-8B-Instruct") == "llama-3.1-8b"
  assert size_of_checkpoint("google/gemma-2-9b-it") == "gemma-2-9b"
  assert size_of_checkpoint("Qwen/Qwen2.5-7B") == "qwen2.5-7b"
  assert size_of_checkpoint("some-org/unknown-model") is None


@pytest.mark.parametrize("mutate,message", [
    (lambda c: setattr(c.train, "lrr", 1.0), "unknown config key 'train.lrr'"),
    (lambda c: c.__setattr__("extra", 1), "unknown config key 'extra'"),
    (lambda c: c.train.__setattr__("epochs", "two"), None),  # ConfigDict itself refuses
    (lambda c: c.task.__setattr__("name", "sst3"), "'task.name': unknown task 'sst3'"),
    (lambda c: c.task.__setattr__("n_strong_train", -1), "'task.n_strong_train': must be >= 0"),
    (lambda c: c.update(eval_tasks=("synthetic",), eval_max_len=4096),
     "'train.buckets': the largest bucket 32 must hold eval_max_len=4096"),
    (lambda c: c.__setattr__("losses", ("xent", "confidence")), "'losses': unknown loss"),
    (lambda c: c.strong.__setattr__("size", "tiny-1"), "'strong': models must grow"),
    (lambda c: c.weak.__setattr__("size", "gpt2"), "'strong': models must grow"),
    (lambda c: c.strong.__setattr__("size", "gpt5"), "'strong.size': unknown size"),
    (lambda c: c.train.__setattr__("batch_size", 36), "'train.batch_size': the micro-batch 36"),
    (lambda c: c.train.__setattr__("micro_batch_size", 5), "'train.micro_batch_size'"),
    (lambda c: c.train.__setattr__("eval_batch_size", 12), "'train.eval_batch_size'"),
    (lambda c: c.mesh.__setattr__("data", 3), "'mesh'"),
    (lambda c: c.train.__setattr__("buckets", (32, 16)), "'train.buckets'"),
    (lambda c: c.train.__setattr__("attention", "flash"), "'train.attention': xla | cudnn"),
    (lambda c: c.train.__setattr__("attention", "cudnn"), "'train.attention': cudnn flash "
     "attention needs train.dtype='bfloat16'"),
    (lambda c: c.train.update(attention="cudnn", dtype="bfloat16"), "'train.attention': cudnn "
     "flash attention needs NVIDIA GPUs; this run's devices are cpu"),
    (lambda c: c.loss.logconf.__setattr__("alpha_max", 1.5), "'loss.logconf.alpha_max'"),
    (lambda c: c.__setattr__("rules", (("embed", "model"),)), r"config.rules\[0\]"),
])
def test_bad_values_name_the_key(mutate, message, nlp_config):
  cfg = nlp_config("tiny")
  if message is None:
    with pytest.raises(TypeError):
      mutate(cfg)
    return
  mutate(cfg)
  with pytest.raises((config_lib.ConfigError, ValueError), match=message):
    config_lib.validate(cfg, 8)


def test_wrong_type_in_a_config_file_names_the_key(nlp_config):
  cfg = nlp_config("tiny")
  cfg.unlock()
  del cfg.train["epochs"]
  cfg.train.epochs = "two"  # a config file that replaced the key with another type
  with pytest.raises(config_lib.ConfigError, match="'train.epochs' must be a finite number"):
    config_lib.validate(cfg, 8)


def replaced(cfg, key, value):
  """A config file that assigns another type than the default's (ConfigDict refuses a plain
  assignment): delete, then set."""
  *parents, leaf = key.split(".")
  node = cfg
  for p in parents:
    node = node[p]
  with node.unlocked():
    del node[leaf]
    node[leaf] = value
  return cfg


# Each of these crashed late (log_every=0: ZeroDivisionError after ~40 s; mesh.tensor=0: a
# ZeroDivisionError) or trained something else than asked, silently (warmup_steps=-10 changed the
# schedule; grad_clip=-1 and bootstrap_samples=-1 were ignored).
@pytest.mark.parametrize("key, value, message", [
    ("train.log_every", 0, "'train.log_every': must be > 0"),
    ("train.micro_batch_size", -4, "'train.micro_batch_size': must be >= 0 .0: no gradient"),
    ("mesh.tensor", 0, "'mesh.tensor': -1 .the remaining devices. or >= 1, got 0"),
    ("mesh.data", -2, "'mesh.data': -1 .the remaining devices. or >= 1, got -2"),
    ("mesh.fsdp", 0, "'mesh.fsdp': -1 .the remaining devices. or >= 1, got 0"),
    ("data_seed", -1, "'data_seed': must be >= 0"),
    ("num_classes", 1, "'num_classes': 0 .the task's label set. or >= 2, got 1"),
    ("task.n_train", -5, "'task.n_train': must be >= 0 .0: all., got -5"),
    ("task.n_test", -1, "'task.n_test': must be >= 0"),
    ("task.negation_rate", 1.5, "'task.negation_rate': must be in"),
    ("task.synthetic_items", 2, "'task.synthetic_items': must be >= 3"),
    ("train.warmup_steps", -10, "'train.warmup_steps': must be >= 0 .0: no warmup., got -10"),
    ("train.grad_clip", -1.0, "'train.grad_clip': must be >= 0 .0: no clipping."),
    ("train.eval_batch_size", 0, "'train.eval_batch_size': must be > 0"),
    ("train.eval_batch_size", -8, "'train.eval_batch_size': must be > 0"),
    ("train.b2", 1.0, "'train.b1': Adam's b1 and b2 must be < 1"),
    ("train.eps", 0.0, "'train.eps': must be > 0"),
    ("train.epochs", float("inf"), "'train.epochs' must be a finite number, got inf"),
    ("train.lr", float("nan"), "'train.lr' must be a finite number, got nan"),
    ("bootstrap_samples", -1, "'bootstrap_samples': must be >= 0 .0: no confidence interval."),
    ("generative_finetune.epochs", 0.0, "'generative_finetune.epochs': must be > 0"),
    ("generative_finetune.lr", -1e-3, "'generative_finetune.lr': must be >= 0"),
    ("generative_finetune.batch_size", -1, "'generative_finetune.batch_size': must be >= 0"),
    ("loss.logconf.warmup_frac", -0.1, "'loss.logconf.warmup_frac': must be >= 0"),
    ("loss.product.alpha", -1.0, "'loss.product.alpha': must be >= 0"),
    ("loss.entropy.entropy_weight", -0.1, "'loss.entropy.entropy_weight': must be >= 0"),
    ("train.log_every", 2.5, "'train.log_every' must be int, got 2.5"),
    ("train.buckets", (16.5, 32), "'train.buckets': strictly increasing positive lengths"),
    ("train.buckets", (), "'train.buckets': strictly increasing positive lengths"),
])
def test_numeric_knobs_out_of_range_name_the_key(key, value, message, nlp_config):
  cfg = nlp_config("tiny")
  *parents, leaf = key.split(".")
  node = cfg
  for p in parents:
    node = node[p]
  try:
    node[leaf] = value
  except TypeError:  # another type than the default: as a config file would write it
    replaced(cfg, key, value)
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(cfg, 8)


@pytest.mark.parametrize("seeds, message", [
    (0, "'seeds' must be a tuple, got 0"),
    ((), "'seeds': a tuple of distinct ints >= 0"),
    ((0, -1), "'seeds': a tuple of distinct ints >= 0, e.g. .0, 1, 2.; got .0, -1."),
    ((1, 1), "'seeds': a tuple of distinct ints"),
    ((True,), "'seeds': a tuple of distinct ints"),
])
def test_seeds_are_a_tuple_of_distinct_non_negative_ints(seeds, message, nlp_config):
  cfg = replaced(nlp_config("tiny"), "seeds", seeds)
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(cfg, 8)


@pytest.mark.parametrize("key, value, message", [
    ("chess.n_eval", -1, "'chess.n_eval': must be >= 0"),
    ("chess.limit", -1, "'chess.limit': must be >= 0 .0: all."),
    ("chess.answer_len", 0, "'chess.answer_len': must be > 0"),
    ("chess.corpus.depth", 0, "'chess.corpus.depth': must be > 0 .stockfish search depth."),
    ("chess.corpus.random_move_prob", 1.5, "'chess.corpus.random_move_prob': must be in"),
    ("chess.corpus.random_plies", (10, 2), "'chess.corpus.random_plies': a range"),
    ("chess.corpus.max_plies", 0, "'chess.corpus.max_plies': must be > 0"),
    ("chess.pretrain.batch_size", 0, "'chess.pretrain.batch_size': must be > 0"),
    ("chess.pretrain.lr", 0.0, "'chess.pretrain.lr': must be > 0"),
    ("chess.pretrain.warmup_steps", -1, "'chess.pretrain.warmup_steps': must be >= 0"),
    ("chess.pretrain.seed", -1, "'chess.pretrain.seed': must be >= 0"),
    ("chess.n_transfer", 0, "'chess.n_transfer': must be > 0"),
    ("early_stopping.enabled", True, "'early_stopping.enabled': the chess ladder has no early"),
])
def test_chess_knobs_out_of_range_name_the_key(key, value, message, chess_config):
  cfg = chess_config("tiny")
  *parents, leaf = key.split(".")
  node = cfg
  for p in parents:
    node = node[p]
  node[leaf] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(cfg, 8)


def test_unknown_key_is_a_plain_sentence(nlp_config):
  cfg = nlp_config("tiny")
  cfg.train.lrr = 1.0
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(cfg, 8)
  assert str(e.value).startswith("unknown config key 'train.lrr'; did you mean 'train.lr'? "
                                 "known keys in 'train': attention, b1, b2, batch_seeds, batch_size")
  assert "\\n" not in str(e.value) and "[" not in str(e.value)


@pytest.mark.parametrize("argv, message", [
    (["--config=configs/nlp.py:tiny", "--config.train.lrr=1"],
     "unknown config key 'train.lrr'; did you mean 'train.lr'? known keys in 'train': "),
    (["--config=configs/nlp.py:tiny", "--config.trainn.lr=1"],
     "unknown config key 'trainn'; did you mean 'train'? known top-level keys: "),
    (["--config=configs/chess_bootstrap.py:tiny", "--config.ladder.m4.size=tiny-3"],
     "unknown ladder rung 'ladder.m4': this config's ladder has m1, m2, m3"),
    (["--config=configs/chess_bootstrap.py:tiny", "--config.ladder.m2.sizee=tiny-3"],
     "unknown config key 'ladder.m2.sizee'; did you mean 'ladder.m2.size'?"),
])
def test_unknown_command_line_keys_are_plain_sentences(argv, message):
  """Flag parsing reports these as '\\'lrr\\'\\nDid you mean...' or a bare 'm4';
  `override_error` gives main a sentence instead."""
  assert str(config_lib.override_error(["main", *argv])).startswith(message)
  assert config_lib.override_error(["main", argv[0], "--config.train.lr=1"]) is None


def test_unknown_variant(nlp_config):
  with pytest.raises(ValueError, match="unknown variant 'huge'"):
    nlp_config("huge")
