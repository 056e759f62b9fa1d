"""Cross-topology drift: train one size on 1 device and on a 4-device mesh (one process, fake
 CPU devices) with the tiny config's data, and print both test accuracies and max |p1 - p4|.

  python benchmarks/topology_drift.py LR EPOCHS SIZE [ADAM_EPS]      e.g. 3e-4 4 tiny-llama-2
"""
import os, sys
os.environ["XLA_FLAGS"]="--xla_force_host_platform_device_count=4"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import jax, numpy as np
from w2s_jax import config as cfg_lib, loop, sharding, train
from w2s_jax.data import dataset as dl, tokenizers
from w2s_jax.models import model_config
import importlib.util
spec = importlib.util.spec_from_file_location("nlp", os.path.join(ROOT, "configs", "nlp.py")); nlp = importlib.util.module_from_spec(spec); spec.loader.exec_module(nlp)
c = nlp.get_config("tiny")
lr = float(sys.argv[1]); c.train.epochs = float(sys.argv[2]); size = sys.argv[3]
if len(sys.argv) > 4: c.train.eps = float(sys.argv[4])
tok = tokenizers.get_tokenizer("byte")
sp = dl.load_splits(c.task, tok, c.max_len, 0)
mc = model_config(size, tok.vocab_size)
res = {}
for name, mesh in [("1", sharding.make_mesh(1,1,1, devices=jax.devices()[:1])), ("4", sharding.make_mesh(1,4,1))]:
  tr = train.Trainer(mc, 2, mesh, sharding.DEFAULT_RULES)
  r = loop.fit(tr, tr.init_params(0), sp.a, dl.one_hot(sp.a.labels, 2), objective="soft", loss_name="xent", loss_hp={}, tcfg=c.train, lr=lr, seed=0)
  res[name] = tr.predict(r.params, sp.test, 256, c.train.buckets)
a, b = res["1"], res["4"]
print(f"lr {lr} ep {c.train.epochs} {size} eps {c.train.eps}: acc {(a.argmax(1)==sp.test.labels).mean():.3f} {(b.argmax(1)==sp.test.labels).mean():.3f} max|dp| {np.abs(a-b).max():.2e}", flush=True)
