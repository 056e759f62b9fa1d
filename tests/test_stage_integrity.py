"""Stage integrity: COMMIT records every file's size and sha256; a damaged stage is recomputed,
never read."""
import json
import logging
import pathlib
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2s_jax import stages
from w2s_jax.errors import WorkdirError

ARRAYS = {"probs": np.linspace(0, 1, 4000, dtype=np.float32).reshape(2000, 2)}


@pytest.fixture()
def store(tmp_path):
  s = stages.StageStore(str(tmp_path))
  params = {"w": jnp.arange(12.0).reshape(3, 4), "b": jnp.ones(4)}
  s.save("train", "k1", {"kind": "train"}, params=params, arrays=ARRAYS, metrics={"acc": 0.75})
  return s


def fresh(store):  # another invocation: nothing verified yet
  return stages.StageStore(str(store.root.parent))


def test_commit_records_every_file_and_a_rerun_reads_the_stage(store):
  record = json.loads((store.path("train", "k1") / "COMMIT").read_text())["files"]
  assert {"arrays.npz", "spec.json", "metrics.json"} <= set(record)
  assert any(name.startswith("params/") for name in record)
  assert not any(name.startswith("ckpt") for name in record)
  for name, want in record.items():
    assert (store.path("train", "k1") / name).stat().length == want["size"]
  again = fresh(store)
  assert again.done("train", "k1")
  np.testing.assert_array_equal(again.arrays("train", "k1")["probs"], ARRAYS["probs"])
  assert again.metrics("train", "k1") == {"acc": 0.75}
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  params = again.params("train", "k1", {"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)},
                        {"w": one, "b": one})
  np.testing.assert_array_equal(params["w"], np.arange(12.0).reshape(3, 4))


def truncate(path):
  path.write_bytes(path.read_bytes()[:100])


def flip_a_bit(path):
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x10
  path.write_bytes(bytes(data))


def params_file(folder):
  files = [p for p in pathlib.Path(folder, "params").rglob("*") if p.is_file()]
  return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage, target, says", [
    (truncate, lambda f: f / "arrays.npz", r"arrays.npz has 100 bytes, \d[\d,]* when committed"),
    (flip_a_bit, lambda f: f / "arrays.npz", "arrays.npz differs from its committed sha256"),
    (flip_a_bit, lambda f: f / "metrics.json", "metrics.json differs"),
    (lambda p: p.unlink(), lambda f: f / "spec.json", "spec.json is missing"),
    (flip_a_bit, params_file, r"params/\S+ differs from its committed sha256"),
    (lambda p: p.write_text('{"fil'), lambda f: f / "COMMIT", "COMMIT is unreadable"),
])
def test_a_damaged_stage_is_named_and_not_done(store, caplog, damage, target, says):
  damage(target(store.path("train", "k1")))
  with caplog.at_level(logging.WARNING, logger="w2s_jax"):
    assert not fresh(store).done("train", "k1")
  assert "stage train-k1 is damaged" in caplog.text and "recomputing it" in caplog.text
  assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
  assert re.search(says, caplog.text), caplog.text


def test_a_damaged_stage_is_recomputed_then_done(store):
  flip_a_bit(store.path("train", "k1") / "arrays.npz")
  again = fresh(store)
  assert not again.done("train", "k1")
  again.save("train", "k1", {"kind": "train"}, arrays={"probs": ARRAYS["probs"] * 0},
             metrics={"acc": 0.5})
  assert fresh(store).done("train", "k1")
  assert fresh(store).metrics("train", "k1") == {"acc": 0.5}


def test_reading_a_file_damaged_after_done_raises_naming_the_stage(store):
  assert store.done("train", "k1")  # verified (and remembered) before the damage
  flip_a_bit(store.path("train", "k1") / "arrays.npz")
  with pytest.raises(WorkdirError, match="stage train-k1: arrays.npz changed after"):
    store.arrays("train", "k1")


def test_a_stage_committed_before_hashes_still_counts_as_done(store):
  folder = store.path("train", "k1")
  (folder / "COMMIT").write_text("")  # the format of earlier versions
  assert fresh(store).done("train", "k1")
  assert fresh(store).metrics("train", "k1") == {"acc": 0.75}
  truncate(folder / "arrays.npz")  # nothing to compare with: read errors name the stage instead
  with pytest.raises(WorkdirError, match="stage train-k1: arrays.npz cannot be read"):
    fresh(store).arrays("train", "k1")


def test_an_uncommitted_stage_is_not_done(store):
  (store.path("train", "k1") / "COMMIT").unlink()
  assert not fresh(store).done("train", "k1")


def test_hashing_is_cheap_relative_to_writing(tmp_path):
  """COMMIT hashes what was written, and done() hashes it again: with 64 MB of parameters
  (random: orbax compresses nothing), hashing takes a fraction of the save."""
  s = stages.StageStore(str(tmp_path))
  params = {"w": jnp.asarray(np.random.default_rng(0).random((4096, 4096), np.float32))}
  t0 = time.perf_counter()
  s.save("train", "big", {}, params=params, arrays={}, metrics={})
  total = time.perf_counter() - t0
  t0 = time.perf_counter()
  assert fresh(s).done("train", "big")  # hashes every file once
  verify = time.perf_counter() - t0
  assert verify < 0.5 * total + 0.2, (verify, total)
