"""EfficientNet-Lite (Tan & Le 2019; the Lite variants: no squeeze-excite, ReLU6, fixed stem and
head) as a frozen feature extractor in JAX: a params pytree and a jitted apply. Weights are the
PyTorch state dicts of `efficientnet-lite-pytorch` (read without torch: `read_pth`); batch norm
runs in inference mode, folded into a per-channel scale and shift.

Features: the global average of the activations after block `k` (1..16) or after the head
(k = 0): mid-level blocks carry more of what a linear probe reads on small images.
"""
import collections
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

# (repeats, kernel, stride of the first, expansion, output channels) per stage of Lite0.
LITE0 = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
         (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
BN_EPS = 1e-3


def blocks(stages=LITE0) -> list[tuple]:
  """(kernel, stride, expansion, input channels, output channels) of every block."""
  out, channels = [], 32
  for repeats, k, s, e, c in stages:
    for r in range(repeats):
      out.append((k, s if r == 0 else 1, e, channels, c))
      channels = c
  return out


def read_pth(path: str) -> dict:
  """A PyTorch state dict as numpy arrays, without importing torch: the zip format and the
  legacy one (magic, protocol, system info, the pickle, then each storage's raw bytes) alike;
  tensors are rebuilt from their storages by (offset, size, stride)."""
  dtypes = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
            "LongStorage": np.int64, "IntStorage": np.int32}
  storages, tensors = {}, []  # key -> dtype (then its array); the tensors to rebuild

  class Tensor:
    def __init__(self, pid, offset, size, stride, *_):
      self.key, self.offset, self.size, self.stride = pid, offset, tuple(size), tuple(stride)
      tensors.append(self)

    def array(self):
      store = storages[self.key]
      if not self.size:
        return store[self.offset].copy()
      item = store.dtype.itemsize
      return np.lib.stride_tricks.as_strided(store[self.offset:], self.size,
                                             [s * item for s in self.stride]).copy()

  class Reader(pickle.Unpickler):
    def find_class(self, module, name):
      if name == "_rebuild_tensor_v2":
        return Tensor
      if name in dtypes:
        return name
      if (module, name) == ("collections", "OrderedDict"):
        return collections.OrderedDict
      raise pickle.UnpicklingError(f"{path}: unexpected object {module}.{name}")

    def persistent_load(self, pid):
      kind, key = pid[1], str(pid[2])
      if kind not in dtypes:
        raise pickle.UnpicklingError(f"{path}: unsupported storage {kind}")
      storages[key] = np.dtype(dtypes[kind])
      return key

  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as z:
      root = z.namelist()[0].split("/")[0]
      with z.open(f"{root}/data.pkl") as f:
        state = Reader(f).load()
      for key, dtype in list(storages.items()):
        storages[key] = np.frombuffer(z.read(f"{root}/data/{key}"), dtype)
  else:
    with open(path, "rb") as f:
      for _ in range(3):  # magic number, protocol version, system info
        pickle.load(f)
      state = Reader(f).load()
      for key in pickle.load(f):
        n = struct.unpack("<q", f.read(8))[0]
        storages[key] = np.frombuffer(f.read(n * storages[key].itemsize), storages[key])
  return {k: v.array() if isinstance(v, Tensor) else v for k, v in state.items()}


def params_from_state_dict(sd: dict) -> dict:
  """The extractor's params from a state dict: conv kernels HWIO, batch norms folded."""
  def bn(prefix):
    scale = sd[f"{prefix}.weight"] / np.sqrt(sd[f"{prefix}.running_var"] + BN_EPS)
    return {"scale": scale, "shift": sd[f"{prefix}.bias"] - sd[f"{prefix}.running_mean"] * scale}

  def conv(name):  # OIHW -> HWIO (depthwise: O x 1 x H x W -> H x W x 1 x O)
    return np.transpose(sd[name], (2, 3, 1, 0))

  out = {"stem": {"w": conv("_conv_stem.weight"), **bn("_bn0")},
         "head": {"w": conv("_conv_head.weight"), **bn("_bn1")}, "blocks": []}
  for i in range(len(blocks())):
    p = f"_blocks.{i}."
    b = {"dw": {"w": conv(p + "_depthwise_conv.weight"), **bn(p + "_bn1")},
         "project": {"w": conv(p + "_project_conv.weight"), **bn(p + "_bn2")}}
    if p + "_expand_conv.weight" in sd:
      b["expand"] = {"w": conv(p + "_expand_conv.weight"), **bn(p + "_bn0")}
    out["blocks"].append(b)
  return jax.tree.map(lambda a: np.asarray(a, np.float32), out)


def abstract_params() -> dict:
  """The shapes of params_from_state_dict's pytree (ShapeDtypeStruct), nothing allocated."""
  def conv(k, cin, cout):
    return {"w": jax.ShapeDtypeStruct((k, k, cin, cout), jnp.float32),
            "scale": jax.ShapeDtypeStruct((cout,), jnp.float32),
            "shift": jax.ShapeDtypeStruct((cout,), jnp.float32)}
  out = {"stem": conv(3, 3, 32), "head": conv(1, blocks()[-1][4], 1280), "blocks": []}
  for k, _, e, cin, cout in blocks():
    b = {"dw": conv(k, 1, cin * e), "project": conv(1, cin * e, cout)}
    if e != 1:
      b["expand"] = conv(1, cin, cin * e)
    out["blocks"].append(b)
  return out


def _conv(x, p, stride=1, groups=1):
  y = jax.lax.conv_general_dilated(x, p["w"], (stride, stride), "SAME",  # TF "same" padding
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   feature_group_count=groups)
  return y * p["scale"] + p["shift"]


def features(params: dict, images, depth: int = 0):
  """images [N, H, W, 3] in [-1, 1] -> [N, C]: the mean activation after block `depth`
  (1..16), or after the head (0)."""
  relu6 = lambda v: jnp.clip(v, 0.0, 6.0)  # noqa: E731
  x = relu6(_conv(images, params["stem"], 2))
  for i, ((k, s, e, cin, cout), p) in enumerate(zip(blocks(), params["blocks"])):
    y = relu6(_conv(x, p["expand"])) if "expand" in p else x
    y = relu6(_conv(y, p["dw"], s, groups=y.shape[-1]))
    y = _conv(y, p["project"])
    x = x + y if s == 1 and cin == cout else y
    if depth == i + 1:
      return x.mean((1, 2))
  return relu6(_conv(x, params["head"])).mean((1, 2))
