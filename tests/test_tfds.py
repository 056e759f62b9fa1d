"""TFDS data source without TensorFlow: prepare a local array_record dataset, read it back."""
import importlib.util
import json
import shutil
import sys

import pytest

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("array_record")

from w2s_jax.data.tfds_source import load_rows, prepare_local  # noqa: E402

ROWS = {
  "train": [{"text": f"train héllo {i}", "label": i % 2} for i in range(20)],
  "test": [{"text": f"test row {i}", "label": (i * 7) % 3} for i in range(10)],
}


# With TF installed, tfds/etils use it when present (e.g. tf.io.gfile paths); the point here is
# that nothing needs it, so check "never imported" where it is absent (as in this project's env).
TF_INSTALLED = importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tfds")
  path = prepare_local(ROWS, "w2s_local_rows", str(d), features={"text": "text", "label": "int"})
  assert path.startswith(str(d)) and path.endswith("w2s_local_rows/1.0.0")
  return str(d)


def test_rows_round_trip(data_dir):
  for split, expected in ROWS.items():
    rows = load_rows("w2s_local_rows", split, data_dir)
    assert len(rows) == len(expected)
    for i, (row, want) in enumerate(zip(rows, expected)):
      assert row == {**want, "_where": f"tfds:w2s_local_rows/{split} row {i}"}
      assert type(row["text"]) is str and type(row["label"]) is int
  assert TF_INSTALLED or "tensorflow" not in sys.modules


def test_limit(data_dir):
  rows = load_rows("w2s_local_rows", "test", data_dir, limit=3)
  assert [r["text"] for r in rows] == ["test row 0", "test row 1", "test row 2"]
  assert rows[-1]["_where"] == "tfds:w2s_local_rows/test row 2"
  assert len(load_rows("w2s_local_rows", "test", data_dir, limit=100)) == 10


def test_inferred_features(tmp_path):
  rows = {"train": [{"text": "a", "label": 3, "score": 0.25, "_where": "ignored"}]}
  prepare_local(rows, "w2s_inferred", str(tmp_path))
  (row,) = load_rows("w2s_inferred", "train", str(tmp_path))
  assert row == {"text": "a", "label": 3, "score": 0.25, "_where": "tfds:w2s_inferred/train row 0"}


def test_missing_dataset_or_data_dir(data_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match=r"'w2s_nope'.*not prepared.*array_record") as e:
    load_rows("w2s_nope", "train", data_dir)
  assert data_dir in str(e.value)
  empty = str(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match=r"'w2s_local_rows'.*not prepared.*array_record") as e:
    load_rows("w2s_local_rows", "train", empty)
  assert empty in str(e.value)
  with pytest.raises(FileNotFoundError, match=r"default TFDS data_dir"):
    load_rows("w2s_no_such_dataset_anywhere", "train")


def test_not_array_record(data_dir, tmp_path):
  # A dataset prepared as tfrecord (the tfds default) has no random access: say so.
  src = f"{data_dir}/w2s_local_rows"
  shutil.copytree(src, tmp_path / "w2s_local_rows")
  info_path = tmp_path / "w2s_local_rows" / "1.0.0" / "dataset_info.json"
  info = json.loads(info_path.read_text())
  info["fileFormat"] = "tfrecord"
  info_path.write_text(json.dumps(info))
  with pytest.raises(FileNotFoundError, match=r"not in array_record format"):
    load_rows("w2s_local_rows", "train", str(tmp_path))


def test_tfds_task_through_the_pipeline_splits(tmp_path):
  """config.task.name="tfds": a local TFDS dataset becomes balanced A/B/test splits."""
  from w2s_jax import config as config_lib  # noqa: PLC0415
  from w2s_jax.data import dataset as data_lib  # noqa: PLC0415
  from w2s_jax.data.tokenizers import ByteTokenizer  # noqa: PLC0415
  rows = {s: [{"text": f"{s} {i}", "label": i % 2} for i in range(n)]
          for s, n in (("train", 40), ("test", 10))}
  prepare_local(rows, "w2s_task_rows", str(tmp_path))
  cfg = config_lib.defaults().task
  cfg.update(name="tfds", tfds_name="w2s_task_rows", tfds_data_dir=str(tmp_path))
  splits = data_lib.load_splits(cfg, ByteTokenizer(), 64, 0)
  assert (len(splits.a), len(splits.b), len(splits.test)) == (20, 20, 10)
  assert sorted(splits.test.labels.tolist()) == [0] * 5 + [1] * 5
