"""The settings registry and the package's import graph."""
import ast
import pathlib

import ml_collections

from w2s_jax import config as config_lib, settings

ROOT = pathlib.Path(__file__).resolve().parent.parent / "w2s_jax"
API = ("ROWS", "defaults", "validate", "needs", "build", "tables", "figures")


def test_every_setting_module_declares_the_api():
  assert settings.SETTINGS == ("chess", "nlp", "vision")
  rows = set()
  for module in settings.every():
    assert all(hasattr(module, name) for name in API), module.__name__
    rows.add(module.ROWS)
    own = ml_collections.ConfigDict()
    module.defaults(own)
    shared = set(config_lib.defaults().keys()) - set(own.keys())
    assert not set(own.keys()) & shared  # a setting's keys are its own
  assert len(rows) == len(settings.SETTINGS)


def _imports() -> dict:
  """module -> the w2s_jax modules it imports anywhere in its file (function bodies too)."""
  modules = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in ROOT.rglob("*.py")}
  out = {}
  for name, path in modules.items():
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("w2s_jax"):
        for alias in node.names:
          full = f"{node.module}.{alias.name}"
          deps.add(full if full in modules else node.module)
      elif isinstance(node, ast.Import):
        deps |= {a.name for a in node.names if a.name.startswith("w2s_jax")}
    # A module's own package (its __init__) is not an edge back.
    out[name] = {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
  return out


def test_no_import_circle():
  """No module imports (at the top or inside a function) one that imports it back, directly
  or through others; settings are reached by name through the registry."""
  graph, state, cycles = _imports(), {}, []

  def visit(node, path):
    state[node] = "open"
    for dep in sorted(graph[node]):
      if state.get(dep) == "open":
        cycles.append(path[path.index(dep):] + [dep])
      elif dep not in state:
        visit(dep, path + [dep])
    state[node] = "done"
  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
