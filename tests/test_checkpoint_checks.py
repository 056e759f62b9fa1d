"""check_checkpoint: a damaged or mismatched checkpoint is a CheckpointError naming the file and
the tensor, found from headers before any training (and the loaders say the same)."""
import json

import jax
import pytest

from w2s_jax import sharding, train
from w2s_jax.errors import CheckpointError
from w2s_jax.models import check_checkpoint, gguf_checkpoint, hf as hf_lib, model_config

from tests.test_gguf import write_gguf
from tests.test_hf import hf_model


def abstract(mc):
  tr = train.Trainer(mc, 2, sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]),
                     sharding.DEFAULT_RULES)
  return tr.abstract_params(), tr.param_shardings


@pytest.fixture()
def folder(tmp_path):
  hf_model("llama").save_pretrained(tmp_path)
  return tmp_path


def load(init, params):
  abstract_params, shardings = params
  module = hf_lib if init.startswith("hf:") else gguf_checkpoint
  return module.load_params(init.split(":", 1)[1], abstract_params, shardings)


def test_a_sound_checkpoint_passes(folder):
  check_checkpoint(f"hf:{folder}", abstract(hf_lib.load_config(str(folder)))[0])
  check_checkpoint("scratch", {})


def test_truncated_safetensors_file_names_the_file_and_a_tensor(folder):
  params = abstract(hf_lib.load_config(str(folder)))
  path = folder / "model.safetensors"
  path.write_bytes(path.read_bytes()[:-1000])  # a download cut short
  for run in (lambda: check_checkpoint(f"hf:{folder}", params[0]),
              lambda: load(f"hf:{folder}", params)):
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor '.+' ends at byte "
                                              r"\d+ but the file has \d+ bytes: the file is "
                                              "truncated"):
      run()


def test_truncated_or_damaged_header(folder):
  params = abstract(hf_lib.load_config(str(folder)))
  path = folder / "model.safetensors"
  data = path.read_bytes()
  path.write_bytes(data[:200])  # inside the header
  with pytest.raises(CheckpointError, match=r"model.safetensors: truncated or not a safetensors"):
    check_checkpoint(f"hf:{folder}", params[0])
  n = int.from_bytes(data[:8], "little")
  path.write_bytes(data[:8] + b"\xff" * n + data[8 + n:])  # same length, not JSON
  with pytest.raises(CheckpointError, match=r"model.safetensors: the safetensors header is not "
                                            "valid JSON"):
    load(f"hf:{folder}", params)
  path.write_bytes(b"\x01\x00")
  with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
    check_checkpoint(f"hf:{folder}", params[0])


def test_missing_tensor_and_wrong_shapes(folder):
  from safetensors.numpy import load_file, save_file  # noqa: PLC0415
  mc = hf_lib.load_config(str(folder))
  params = abstract(mc)
  tensors = load_file(str(folder / "model.safetensors"))
  del tensors["model.layers.1.mlp.down_proj.weight"]
  save_file(tensors, str(folder / "model.safetensors"))
  with pytest.raises(CheckpointError, match=r"no tensor 'model.layers.1.mlp.down_proj.weight' "
                                            r"\(parameter blocks/w_out\)"):
    check_checkpoint(f"hf:{folder}", params[0])
  hf_model("llama").save_pretrained(folder)  # sound again
  # The configured model is not the checkpoint's: named with both shapes.
  other = abstract(model_config("tiny-llama-2", mc.vocab_size, n_heads=8, n_kv_heads=8,
                                head_dim=8))
  with pytest.raises(CheckpointError, match=r"blocks/wk has shape \(2, 64, 2, 16\), the model "
                                            r"expects \(2, 64, 8, 8\) \(tensor "
                                            r"model.layers.0.self_attn.k_proj.weight\)"):
    check_checkpoint(f"hf:{folder}", other[0])
  # A tensor whose shape is not what config.json says.
  cfg = json.loads((folder / "config.json").read_text())
  cfg["num_key_value_heads"] = 4
  (folder / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(CheckpointError, match=r"tensor model.layers.0.self_attn.k_proj.weight in "
                                            r"model.safetensors has shape \(32, 64\), the "
                                            r"checkpoint's config implies \(64, 64\)"):
    check_checkpoint(f"hf:{folder}", params[0])
  (folder / "config.json").write_text("{not json")
  with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
    check_checkpoint(f"hf:{folder}", params[0])


def test_gguf_truncated_header_data_and_mismatch(tmp_path):
  path = tmp_path / "tiny.gguf"
  write_gguf(hf_model("llama"), path)
  mc = gguf_checkpoint.load_config(str(path))
  params = abstract(mc)
  check_checkpoint(f"gguf:{path}", params[0])
  other = abstract(model_config("tiny-llama-2", mc.vocab_size, d_ff=96))
  with pytest.raises(CheckpointError, match=r"blocks/w_gate has shape \(2, 64, 128\), the model "
                                            r"expects \(2, 64, 96\)"):
    check_checkpoint(f"gguf:{path}", other[0])
  data = path.read_bytes()
  path.write_bytes(data[:-100])
  for run in (lambda: check_checkpoint(f"gguf:{path}", params[0]),
              lambda: load(f"gguf:{path}", params)):
    with pytest.raises(CheckpointError, match=r"tiny.gguf: tensor '.+' ends at byte \d+ but the "
                                              r"file has \d+ bytes: the file is truncated"):
      run()
  path.write_bytes(data[:300])
  with pytest.raises(CheckpointError, match=r"tiny.gguf: the GGUF header is truncated"):
    gguf_checkpoint.load_config(str(path))
  path.write_bytes(b"not a gguf file at all")
  with pytest.raises(CheckpointError, match="not a GGUF file"):
    check_checkpoint(f"gguf:{path}", params[0])
