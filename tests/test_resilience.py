"""Checkpoints: restore on another mesh, preemption, non-finite loss, FSDP memory, dry run."""
import os
import shutil
import signal

import jax
import numpy as np
import pytest

from w2s_jax import checkpoint, sharding, train
from w2s_jax.data import dataset as data_lib
from w2s_jax.models import model_config
from tests.conftest import fit_tiny, run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup(small_task):
  cfg, splits = small_task
  cfg = cfg.copy_and_resolve_references()
  cfg.train.checkpoint_every = 4
  cfg.train.epochs = 12 / data_lib.steps_per_epoch(len(splits.a), 32)  # 12 steps
  return cfg, splits


def fit(cfg, splits, mesh, ckpt_dir="", targets=None, **kw):
  return fit_tiny(splits, cfg.train, size="tiny-2", mesh=mesh, targets=targets,
                  loss_name="logconf", loss_hp=cfg.loss.logconf.to_dict(), lr=cfg.train.lr,
                  ckpt_dir=ckpt_dir, **kw)


def assert_close(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)


@pytest.mark.slow
def test_saved_on_8_devices_resumes_on_4_and_on_1(setup, tmp_path):
  cfg, splits = setup
  full = fit(cfg, splits, sharding.make_mesh(1, 8, 1))
  with pytest.raises(checkpoint.Preempted, match="stopped at step 6 of 12"):
    fit(cfg, splits, sharding.make_mesh(1, 8, 1), str(tmp_path / "a"), stop_after=6)
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  for devices, path in ((4, "a"), (1, "b")):
    mesh = sharding.make_mesh(1, devices, 1, devices=jax.devices()[:devices])
    resumed = fit(cfg, splits, mesh, str(tmp_path / path))
    assert resumed.resumed_from == 6 and resumed.steps == 12
    assert_close(resumed.params, full.params, atol=1e-5)
    assert resumed.params["blocks"]["w_in"].sharding.mesh.devices.size == devices


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_then_stops(setup, tmp_path):
  cfg, splits = setup

  class SendSigterm:  # a metrics writer that delivers SIGTERM at step 2
    def write(self, stage, metrics, total):
      if metrics["step"] == 2:
        os.kill(os.getpid(), signal.SIGTERM)

  try:
    with pytest.raises(checkpoint.Preempted):
      fit(cfg, splits, sharding.make_mesh(1, 8, 1), str(tmp_path), writer=SendSigterm())
  finally:
    checkpoint.clear_preemption()
  saved = checkpoint.TrainCheckpoints(str(tmp_path), 4, 2)
  step = saved.latest_step()
  saved.close()
  assert step is not None and 2 <= step < 12  # saved at the first step boundary after it
  resumed = fit(cfg, splits, sharding.make_mesh(1, 8, 1), str(tmp_path))
  assert resumed.resumed_from == step
  assert_close(resumed.params, fit(cfg, splits, sharding.make_mesh(1, 8, 1)).params, atol=1e-6)


@pytest.mark.slow
def test_non_finite_loss_names_the_step_and_keeps_the_last_good_checkpoint(setup, tmp_path):
  cfg, splits = setup
  targets = data_lib.one_hot(splits.a.labels, 2)
  bad_row = data_lib.batch_indices(len(splits.a), 7, cfg.train.batch_size, 0)[0]
  targets[bad_row] = np.nan  # poisons the loss of step 7 only
  with pytest.raises(train.NonFiniteLoss, match="at step 7"):
    fit(cfg, splits, sharding.make_mesh(1, 8, 1), str(tmp_path), targets=targets)
  saved = checkpoint.TrainCheckpoints(str(tmp_path), 4, 2)
  assert saved.latest_step() == 4  # the step-8 checkpoint was never written
  saved.close()


def test_fsdp_holds_one_eighth_of_params_and_optimizer_state_per_device(setup):
  cfg, _ = setup
  mesh = sharding.make_mesh(1, 8, 1)
  tr = train.Trainer(model_config("tiny-3", 259), 2, mesh, sharding.DEFAULT_RULES)
  tx, schedule = train.make_optimizer(cfg.train, 1e-3, 10)
  _, init_fn, _ = tr.make_train_step(tx, schedule, train.losses.get("xent"), {}, 10)
  state = init_fn(tr.init_params(0))
  for part in ("params", "opt_state"):
    total = sum(x.nbytes for x in jax.tree.leaves(state[part]))
    per_device = sharding.per_device_bytes(state[part])
    assert len(per_device) == 8
    # Norm scales and biases are replicated: a little more than 1/8, far less than all.
    assert max(per_device) < 1.1 * total / 8, (part, per_device, total)


@pytest.mark.slow
def test_dry_run_prints_memory_per_device_without_training():
  proc = run_main("--config=configs/nlp.py:tiny", "--dry_run", "--fake_devices=4",
                  "--config.strong.size=gpt2", "--config.mesh.fsdp=4")
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = dict(line.split("  ", 1) for line in proc.stdout.splitlines() if "  " in line)
  params_gib = float(lines["parameters / device"].split()[0])
  assert params_gib == pytest.approx(124_441_344 * 4 / 4 / 2 ** 30, rel=0.02)
  assert float(lines["optimizer state / device"].split()[0]) == pytest.approx(2 * params_gib,
                                                                              rel=0.02)
  for key in ("temporaries / device", "peak estimate / device", "model FLOPs / step / device"):
    assert key in lines
  assert "cpu x4" in lines["devices"]
  proc = run_main("--config=configs/nlp.py:tiny", "--dry_run", "--topology=v9z:3x3x3x3")
  assert proc.returncode != 0 and "--topology=v9z:3x3x3x3" in proc.stderr


def test_roofline_takes_the_slowest_of_compute_hbm_and_ici():
  from w2s_jax import dry_run  # noqa: PLC0415
  chip = dict(flops=100e12, hbm=16e9, hbm_bw=1e12, ici_bw=0.5e12)
  # 1e9 parameters over 4 fsdp devices, no remat: HBM 2 passes x 2 GB + 28 GB / 4 = 11 GB ->
  # 11 ms; ICI 2 x 2 GB x 3/4 + 4 GB x 3/4 = 6 GB -> 12 ms; compute 1e12 / 1e14 = 10 ms.
  r = dry_run.roofline(1e12, 10**9, {"data": 1, "fsdp": 4, "tensor": 1}, "none", chip)
  assert r["compute_s"] == pytest.approx(0.010) and r["hbm_s"] == pytest.approx(0.011)
  assert r["ici_s"] == pytest.approx(0.012) and r["bound"] == "ICI"
  assert r["mfu_bound"] == pytest.approx(10 / 12)
  r = dry_run.roofline(1e14, 10**9, {"data": 1, "fsdp": 4, "tensor": 1}, "full", chip)
  assert r["bound"] == "compute" and r["mfu_bound"] == 1.0
  # data 2 x fsdp 2 x tensor 2, 2 micro-batches: reads 2 x 2 x 2 GB / 2 = 4 GB, optimizer
  # 28 GB / 4 = 7 GB -> 11 ms; ICI 4 GB x 1/2 + 4 GB / 2 x 3/4 = 3.5 GB -> 7 ms.
  r = dry_run.roofline(1e12, 10**9, {"data": 2, "fsdp": 2, "tensor": 2}, "none", chip, accum=2)
  assert r["hbm_s"] == pytest.approx(0.011) and r["ici_s"] == pytest.approx(0.007)


def test_dry_run_compiles_the_tiny_variant_for_a_tpu_slice_when_libtpu_is_installed():
  pytest.importorskip("libtpu")  # the [tpu] extra: TPU slices described on a CPU
  proc = run_main("--config=configs/nlp.py:tiny", "--dry_run", "--topology=v5e:2x2",
                  JAX_PLATFORMS="cpu")
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = dict(line.split("  ", 1) for line in proc.stdout.splitlines() if "  " in line)
  assert "v5e:2x2" in lines["devices"] and "'fsdp': 4" in lines["devices"]
  assert lines["HBM per chip"].strip().endswith("fits")
  assert "-bound" in lines["roofline step time"] and 0 < float(lines["MFU bound"]) <= 1
