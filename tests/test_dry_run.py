"""The dry run compiles the program a run executes, for every setting, from the size tables."""
import jax
import pytest

from w2s_jax import dry_run, sharding, train
from w2s_jax.assets import __main__ as assets_cli
from w2s_jax.errors import ConfigError
from w2s_jax.models import model_config
from tests.conftest import fit_tiny


def test_the_dry_run_compiles_the_program_fit_runs(small_task):
  """Lowering the dry run's program traces it once; a fit of the same trainer, loss and batch
  then runs that very program: no second program, no second trace."""
  cfg, splits = small_task
  cfg = cfg.copy_and_resolve_references()
  cfg.train.buckets = (32,)
  cfg.max_len = 32
  tr = train.Trainer(model_config("tiny-1", 259), 2, sharding.make_mesh(1, 8, 1),
                     sharding.DEFAULT_RULES)
  program = dry_run.transformer_train(cfg, tr, name="tiny-1", remat="none",
                                      remat_key="strong.remat", objective="soft",
                                      loss_name="xent", length=32)
  program.fn.lower(*program.args).compile()
  assert len(tr.programs) == 1 and tr.traces["train"] == 1
  fit_tiny(splits, cfg.train, tr, steps=2)
  assert len(tr.programs) == 1 and tr.traces["train"] == 1


@pytest.mark.parametrize("spec, what", [
    ("vision:pod", "features forward of hf:facebook/dinov2-base"),  # shapes from KNOWN
    ("chess_bootstrap:gpu", "train step of M3:chess-100m+pt3000 (hard targets, xent, legal"),
    ("reward_model:tiny", "train step of tiny-llama-2 (soft targets, xent)"),
])
def test_every_setting_has_a_dry_run(spec, what):
  out = dry_run.report(assets_cli.config_of(spec))
  rows = dict(line.split("  ", 1) for line in out.splitlines())
  assert rows["program"].strip().startswith(what)
  assert float(rows["peak estimate / device"].split()[0]) > 0
  if spec.startswith("reward"):  # pairs: both texts of a row in one batch
    assert rows["batch"].strip().endswith(", 2]")


def test_a_checkpoint_of_unknown_shapes_says_so():
  cfg = assets_cli.config_of("vision:pod")
  cfg.vision.strong = "hf:someone/some-vit"
  with pytest.raises(ConfigError, match="'vision.strong'.*not in w2s_jax/vision/vit.py KNOWN"):
    dry_run.report(cfg)


def test_a_sweep_dry_runs_its_largest_point():
  out = dry_run.report(assets_cli.config_of("nlp:sweep_tiny"))
  assert "(sweep point 3 of 3)" in out and jax.device_count() == 8
