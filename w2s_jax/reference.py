"""Reference tables generated from the code: tasks, model sizes, losses and config keys.

  python -m w2s_jax.reference > docs/reference.md

The tables are read from the registries themselves (`data.tasks.all_tasks()`, `models.SIZES`,
`losses.LOSSES`, `config.defaults()`), so the page says what the code does; tests/test_docs.py
fails when docs/reference.md differs from this module's output, naming the command above.
"""
import inspect

import ml_collections

from w2s_jax import assets, config as config_lib, losses, methods, settings
from w2s_jax.data import tasks as tasks_lib
from w2s_jax.data.tokenizers import ByteTokenizer
from w2s_jax.models import SIZES, model_config, param_count

COMMAND = "python -m w2s_jax.reference > docs/reference.md"


def _cell(value) -> str:
  """A markdown table cell: code-formatted, with pipes escaped."""
  return "`" + repr(value).replace("|", "\\|") + "`"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
  out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  return out + ["| " + " | ".join(r) + " |" for r in rows]


# ------------------------------------------------------------------------------------ tasks
def _source(task) -> str:
  """Where a task's rows come from, read off its loader: a Hub dataset, a BIG-bench task file,
  or a local loader function."""
  load = task.load
  free = inspect.getclosurevars(load).nonlocals if load.__closure__ else {}
  module = load.__module__.rsplit(".", 1)[-1]
  if load.__name__ == "balanced" and "load" in free:  # nlp_tasks.balanced_by over a loader
    return _source(task._replace(load=free["load"])) + ", as many of each right answer"
  if module == "nlp_tasks" and "path" in free:
    name = f" `{free['name']}`" if free.get("name") else ""
    return (f"Hub `{free['path']}`{name} (train: `{free['train']}`, test: `{free['test']}`), "
            "or JSONL in that schema")
  if module == "bigbench" and "name" in free:
    return f"BIG-bench `{free['name']}` (test held out: `task.test_frac`)"
  if module == "bigbench":
    return f"BIG-bench, `{load.__name__}`"
  if module == "offline_tasks":
    what = free.get("files") or free.get("names") or load.__name__
    specs = ", ".join(assets.ASSETS[a].spec for a in task.assets)
    return f"{specs}: `{', '.join(what) if isinstance(what, tuple) else what}` (test held out)"
  return f"`{load.__module__}.{load.__name__}`"


def tasks_table() -> list[str]:
  task_cfg = config_lib.defaults().task
  registry = tasks_lib.all_tasks()
  rows = []
  for kind in ("classification", "pairwise"):
    for name in sorted(n for n, t in registry.items() if t.kind == kind):
      t = registry[name]
      rows.append([f"`{name}`", kind, ", ".join(t.labels(task_cfg)),
                   "yes" if t.balance else "no", _source(t)])
  return _table(["task.name", "kind", "labels (default config)", "balanced 50/50", "rows from"],
                rows)


# ------------------------------------------------------------------------------------ sizes
def _architecture(mc) -> str:
  parts = [f"{mc.pos_emb} positions", mc.norm, mc.mlp]
  if mc.kv_heads != mc.n_heads:
    parts.append(f"GQA {mc.n_heads}/{mc.kv_heads}")
  if mc.qkv_bias and mc.pos_emb == "rope":
    parts.append("qkv bias")
  if mc.qk_norm:
    parts.append("q/k norm")
  if mc.rope_type != "default":
    parts.append(f"{mc.rope_type} rope x{mc.rope_factor:g}")
  if mc.sliding_window:
    every = f", global every {mc.sliding_window_pattern}" if mc.sliding_window_pattern else ""
    parts.append(f"window {mc.sliding_window}{every}")
  if mc.attn_softcap or mc.final_softcap:
    parts.append(f"softcaps {mc.attn_softcap:g}/{mc.final_softcap:g}")
  parts.append("tied" if mc.tied_embeddings else "untied")
  return ", ".join(parts)


def sizes_table() -> list[str]:
  byte_vocab = ByteTokenizer.vocab_size
  rows = []
  for name, fields in SIZES.items():
    from_tokenizer = not fields["vocab_size"]
    mc = model_config(name, byte_vocab)
    vocab = f"tokenizer ({byte_vocab:,} counted)" if from_tokenizer else f"{mc.vocab_size:,}"
    rows.append([f"`{name}`", f"{param_count(mc):,}", str(mc.n_layers), str(mc.d_model),
                 f"{mc.n_heads} / {mc.kv_heads}", str(mc.dim_head), str(mc.d_ff), vocab,
                 str(mc.max_len), _architecture(mc)])
  return _table(["size", "parameters", "layers", "d_model", "heads / kv", "head_dim", "d_ff",
                 "vocab", "max_len", "architecture"], rows)


# ----------------------------------------------------------------------------------- losses
def losses_table() -> list[str]:
  hp = config_lib.defaults().loss
  rows = []
  for name, loss in losses.LOSSES.items():
    keys = ", ".join(f"`loss.{name}.{k}={v!r}`" for k, v in sorted(hp[name].items())) \
        if name in hp else "none"
    rows.append([f"`{name}`", "yes" if loss.needs_logits else "no", keys])
  return _table(["loss", "targets use the student's predictions", "hyper-parameters (default)"],
                rows)


# ---------------------------------------------------------------------------------- methods
def methods_table() -> list[str]:
  """The method registries: each entry with the first line of its function's docstring."""
  def doc(f):
    return " ".join((f.__doc__ or "").strip().split("\n\n")[0].split())
  rows = [["`methods.filters`", f"`{k}`", doc(f)] for k, f in methods.FILTERS.items()]
  rows += [["`methods.ensembles`", f"`{k}`", what] for k, what in methods.ENSEMBLES.items()]
  rows += [["`methods.supervisors`", f"`{k}`", doc(f)] for k, f in methods.SUPERVISORS.items()]
  return _table(["key", "entry", "what it does"], rows)


# ----------------------------------------------------------------------------------- config
def flatten(node, prefix: str = "") -> list[tuple[str, object]]:
  """(dotted key, default) of every leaf of a ConfigDict, in key order."""
  out = []
  for key in node.keys():
    value, name = node[key], f"{prefix}{key}"
    if hasattr(value, "keys") and hasattr(value, "to_dict"):
      out += flatten(value, name + ".")
    else:
      out.append((name, value))
  return out


def config_table() -> list[str]:
  """Every leaf of defaults(), with the setting that owns it (shared: every setting); the
  ladder (empty by default) as the keys of one rung."""
  owner = {}
  for setting in settings.SETTINGS:
    own = ml_collections.ConfigDict()
    settings.get(setting).defaults(own)
    owner.update(dict.fromkeys(own.keys(), setting))
  rows = [(name, _cell(value)) for name, value in flatten(config_lib.defaults())]
  rung = [(name, "(required: `rung_spec(size)`)" if name.endswith(".size") else _cell(value))
          for name, value in flatten(config_lib.rung_spec("SIZE"), "ladder.mK.")]
  rows = sorted(rows + rung)
  return _table(["config key", "setting", "default"],
                [[f"`{k}`", owner.get(k.split(".")[0], "shared"), v] for k, v in rows])


# ------------------------------------------------------------------------------------- page
def render() -> str:
  lines = [
      "# Reference",
      "",
      f"Generated from the code by `{COMMAND}`; do not edit by hand "
      "(tests/test_docs.py compares this page with the command's output).",
      "",
      "## Tasks",
      "",
      "`task.name` takes any of these (`w2s_jax.data.tasks.all_tasks()`). Pairwise tasks are "
      "preference pairs for reward models; `eval_tasks` must be of the same kind as "
      "`task.name`. Balanced tasks are downsampled to 50/50 classes.",
      "",
      *tasks_table(),
      "",
      "## Model sizes",
      "",
      "`weak.size`, `strong.size` and ladder rungs take any of these "
      "(`w2s_jax.models.SIZES`), or `auto` with a checkpoint `init`. Parameters are "
      "`models.param_count`: body plus a 2-class head, a tied embedding counted once. Sizes "
      "whose vocabulary comes from the tokenizer are counted with the byte tokenizer's "
      f"{ByteTokenizer.vocab_size} ids.",
      "",
      *sizes_table(),
      "",
      "## Losses",
      "",
      "`losses` takes any of these (`w2s_jax.losses.LOSSES`); hyper-parameters are config keys.",
      "",
      *losses_table(),
      "",
      "## Methods",
      "",
      "Students beyond the losses (`w2s_jax.methods`, docs/methods.md): each entry adds a "
      "student trained with `methods.loss`, paired against naive xent.",
      "",
      *methods_table(),
      "",
      "## Config keys",
      "",
      "Every key of `w2s_jax.config.defaults()` with its default; config files change some, "
      "`--config.KEY=VALUE` overrides any. Shared keys are declared in w2s_jax/config.py, a "
      "setting's own in w2s_jax/settings/SETTING.py, with a comment beside each that says "
      "what it does; a run validates the shared keys and its own setting's, and refuses "
      "another setting's key changed from its default. `ladder.mK` stands for each rung "
      "m1..mn of a chess ladder.",
      "",
      *config_table(),
  ]
  return "\n".join(lines) + "\n"


def main() -> None:
  print(render(), end="")


if __name__ == "__main__":
  main()
