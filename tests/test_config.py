"""The whole config is validated before work starts, with errors that name the key."""
import pytest

from w2s_jax import config as config_lib


def test_shipped_configs_validate(nlp_config):
  for variant in ("tiny", "jsonl", "offline"):  # offline reads SmolLM2's GGUF (cached once)
    config_lib.validate(nlp_config(variant), 8)


@pytest.mark.parametrize("variant", ["pod_gpt2", "pod_qwen"])
def test_pod_variants_name_hub_checkpoints_and_fail_clearly_offline(variant, nlp_config):
  cfg = nlp_config(variant)
  assert cfg.weak.init.startswith("hf:") and cfg.strong.init.startswith("hf:")
  assert cfg.task.name == "sciq" and len(cfg.seeds) == 3 and cfg.train.dtype == "bfloat16"
  with pytest.raises(config_lib.ConfigError, match="'weak.init'.*not downloadable"):
    config_lib.validate(cfg, 8)  # HF_HUB_OFFLINE=1 in the tests: no Hub here


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
  with pytest.raises(config_lib.ConfigError, match="'train.epochs' must be a number"):
    config_lib.validate(cfg, 8)


def test_unknown_variant(nlp_config):
  with pytest.raises(ValueError, match="unknown variant 'huge'"):
    nlp_config("huge")
