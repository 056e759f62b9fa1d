"""The vision setting: ViT / DINOv2 and EfficientNet-Lite parity with their PyTorch references,
image sources, config checks, and the tiny configuration end to end."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from w2s_jax import config as config_lib, experiment, report, sharding, stages
from w2s_jax.errors import ConfigError, DataError
from w2s_jax.vision import backbones, efficientnet, images as images_lib, vit

torch = pytest.importorskip("torch")


def _randomize(module, seed=0):
  """Every parameter and buffer of a torch module random (layer scales and batch-norm
  statistics included), so parity checks more than the initial values."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in module.state_dict().items():
      if t.dtype.is_floating_point:
        t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.25 if "var" in name
                else torch.randn(t.shape, generator=g) * 0.2)


HUB_NAMES = (("layers.", "encoder.layer."), ("attention.q_proj", "attention.attention.query"),
             ("attention.k_proj", "attention.attention.key"),
             ("attention.v_proj", "attention.attention.value"),
             ("attention.o_proj", "attention.output.dense"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vit", "dinov2"])
@pytest.mark.parametrize("hub_names", [False, True])
def test_vit_and_dinov2_match_transformers(kind, hub_names, tmp_path):
  from safetensors.numpy import save_file
  from transformers import Dinov2Config, Dinov2Model, ViTConfig, ViTModel
  if kind == "vit":
    model = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, image_size=32, patch_size=8),
                     add_pooling_layer=False)
  else:
    model = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     mlp_ratio=2, image_size=32, patch_size=8))
  _randomize(model.eval())
  tensors = {k: v.numpy() for k, v in model.state_dict().items()}
  if hub_names:  # the names the Hub's files carry (ViT's under "vit." in its classifiers)
    renamed = {}
    for k, v in tensors.items():
      for new, old in HUB_NAMES:
        k = k.replace(new, old)
      if kind == "vit":
        k = k.replace("mlp.fc1", "intermediate.dense").replace("mlp.fc2", "output.dense")
        k = "vit." + k
      else:
        k = k.replace("layernorm_before", "norm1").replace("layernorm_after", "norm2")
      renamed[k] = v
    tensors = renamed
  save_file(tensors, str(tmp_path / "model.safetensors"))
  (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
  cfg, params = vit.load(str(tmp_path))
  x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
  with torch.no_grad():
    want = model(pixel_values=torch.tensor(x).permute(0, 3, 1, 2)).last_hidden_state[:, 0]
  got = np.asarray(vit.features(params, jnp.asarray(x), cfg))
  np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)


def test_vit_names_a_missing_tensor(tmp_path):
  cfg = vit.VitConfig("vit", 8, 1, 2, 16, 4, 8, 1e-12, False)
  with pytest.raises(KeyError, match="embeddings.patch_embeddings.projection.weight"):
    vit.params_from_tensors({}, cfg)
  with pytest.raises(ValueError, match="not a ViT or DINOv2"):
    vit.config_from_hf({"model_type": "bert"})


@pytest.mark.slow
@pytest.mark.parametrize("zip_format", [True, False])
def test_efficientnet_lite0_matches_its_pytorch_reference(zip_format, tmp_path):
  """Our forward against efficientnet-lite-pytorch's on random weights, through our torch-free
  reader of both PyTorch file formats."""
  ref = pytest.importorskip("efficientnet_lite_pytorch")
  model = ref.EfficientNet.from_name("efficientnet-lite0").eval()
  _randomize(model)
  path = str(tmp_path / "w.pth")
  torch.save(model.state_dict(), path, _use_new_zipfile_serialization=zip_format)
  sd = efficientnet.read_pth(path)
  assert set(sd) == set(model.state_dict())
  _same_features(model, efficientnet.params_from_state_dict(sd), block=7)


def _same_features(model, params, block: int):
  """Our features after the head and after `block` equal the torch model's, within 1e-4."""
  x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
  seen = {}
  model._blocks[block - 1].register_forward_hook(lambda m, i, o: seen.update(b=o.mean((2, 3))))
  with torch.no_grad():
    head = model.extract_features(torch.tensor(x).permute(0, 3, 1, 2)).mean((2, 3)).numpy()
  for depth, want in ((0, head), (block, seen["b"].numpy())):
    got = np.asarray(efficientnet.features(params, jnp.asarray(x), depth))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_backbone_specs():
  assert backbones.parse("efficientnet-lite0@12") == ("efficientnet-lite0", "12")
  assert backbones.parse("hf:facebook/dinov2-base") == ("hf", "facebook/dinov2-base")
  for bad, why in (("resnet", "unknown backbone"), ("efficientnet-lite0@17", "1..16"),
                   ("pixels@3", "no argument")):
    with pytest.raises(ValueError, match=why):
      backbones.parse(bad)
  x = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4, 1)
  mesh = sharding.make_mesh(1, 8, 1)
  bb = backbones.get("pixels", 0)
  got = backbones.extractor(bb, bb.load()[0], 8, mesh)(x)  # 3 rows padded to a batch of 8
  np.testing.assert_allclose(got, x.reshape(3, 16) / 255.0)


def _png_tree(root, classes=("cat", "dog", "owl"), n=4, size=8):
  from PIL import Image
  rng = np.random.default_rng(0)
  for c in classes:
    os.makedirs(root / c)
    for i in range(n):
      Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
          root / c / f"{i}.png")


def test_folder_source(tmp_path):
  _png_tree(tmp_path / "imgs")
  got = images_lib.load(f"folder:{tmp_path / 'imgs'}")
  assert got.x.shape == (12, 8, 8, 3) and got.classes == ("cat", "dog", "owl")
  assert list(np.bincount(got.y)) == [4, 4, 4] and len(got.key()) == 16
  (tmp_path / "imgs" / "dog" / "5.png").write_bytes(b"not a png")
  with pytest.raises(DataError, match="dog/5.png: not a readable image"):
    images_lib.load(f"folder:{tmp_path / 'imgs'}")
  with pytest.raises(DataError, match="one sub-folder per class"):
    images_lib.load(f"folder:{tmp_path / 'imgs' / 'cat'}")


def _load(variant):
  from w2s_jax.assets import __main__ as assets_cli
  return assets_cli.config_of(f"vision:{variant}")


@pytest.mark.parametrize("change, key", [
    (lambda c: c.vision.update(strong="resnet50"), "vision.strong"),
    (lambda c: c.vision.update(strong="pixels"), "vision.strong"),
    (lambda c: c.weak.update(size="tiny-2"), "weak"),
    (lambda c: c.early_stopping.update(enabled=True), "early_stopping.enabled"),
    (lambda c: c.task.update(name="boolq"), "task.name"),  # an nlp key in a vision run
    (lambda c: c.chess.update(n_test=5), "chess.n_test"),
    (lambda c: c.vision.update(epochs=0.0), "vision.epochs"),
])
def test_vision_config_errors_name_the_key(change, key):
  cfg = _load("tiny")
  change(cfg)
  with pytest.raises(ConfigError, match=f"'{key}"):
    config_lib.validate(cfg, jax.device_count())


def test_a_vision_key_in_an_nlp_run_is_refused():
  cfg = config_lib.defaults()
  cfg.vision.n_test = 10
  with pytest.raises(ConfigError, match="'vision.n_test' belongs to the vision setting"):
    config_lib.validate(cfg, jax.device_count())


@pytest.mark.slow
@pytest.mark.asset
def test_tiny_vision_run(tmp_path, capsys):
  cfg = _load("tiny")
  config_lib.validate(cfg, jax.device_count())
  rows = experiment.run(cfg, str(tmp_path))
  assert [r["seed"] for r in rows] == [0, 1] and {r["setting"] for r in rows} == {"vision"}
  r = rows[0]
  assert r["params"]["weak"] == 0 and r["params"]["strong"] > 1_000_000
  assert 0 <= r["weak_acc"] <= 1 and r["chance"] == 0.1 and r["n_test"] == 200
  # Every seed draws its own A and B: its own weak model, labels and students.
  assert rows[0]["stage_keys"]["weak"] != rows[1]["stage_keys"]["weak"]
  assert rows[0]["recipe"] == rows[1]["recipe"]  # ... and the two pool
  out = capsys.readouterr().out
  assert "vision:mnist5k" in out and "chance (1 / classes): vision:mnist5k 0.100" in out
  store = stages.StageStore(str(tmp_path))
  assert store.metrics("features", next(s for s in os.listdir(tmp_path / "stages")
                                        if s.startswith("features"))[9:])["rows"] > 0
  again = experiment.run(cfg, str(tmp_path))  # all cached: the same rows
  assert [a["stage_keys"] for a in again] == [r["stage_keys"] for r in rows]
  assert "vision:mnist5k" in report.render(str(tmp_path))


@pytest.mark.asset
def test_the_imagenet_weights_match_their_pytorch_reference():
  """The pinned EfficientNet-Lite0 asset through our reader and forward, beside the reference
  package's model on the same file: the features a vision run probes."""
  ref = pytest.importorskip("efficientnet_lite_pytorch")
  from w2s_jax import assets
  path = assets.path(*backbones.EFFICIENTNET)
  model = ref.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
  _same_features(model, efficientnet.params_from_state_dict(efficientnet.read_pth(path)),
                 block=12)
