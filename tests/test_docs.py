"""The documentation cannot drift from the code: the generated reference equals its command's
output, the README's first two commands are the set-up commands it promises (the second is what
.ci/run runs), local links resolve, and the notes speak of the project only."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The two commands that do all set-up on a fresh machine, as the README promises them.
MAIN_COMMAND = (
    "pip install -e . && (test -x /usr/games/stockfish || apt-get install -y stockfish || "
    "(apt-get update && apt-get install -y stockfish)) && python -m w2s_jax.main "
    "--config=configs/chess_bootstrap.py --workdir=/tmp/w2s_chess")
TEST_COMMAND = 'pip install -q -e ".[test]" && python -m pytest -q tests'

DOCS = ["README.md", "BUILD_NOTES.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))


def _read(path: str) -> str:
  with open(os.path.join(ROOT, path), encoding="utf-8") as f:
    return f.read()


def code_blocks(markdown: str) -> list[str]:
  """The code blocks of a markdown text in order: fenced, or indented by 4 spaces after a blank
  line (each block's lines dedented and joined)."""
  blocks, lines, i = [], markdown.splitlines(), 0
  while i < len(lines):
    line = lines[i]
    if line.startswith("```"):
      j = i + 1
      while j < len(lines) and not lines[j].startswith("```"):
        j += 1
      blocks.append("\n".join(lines[i + 1:j]))
      i = j + 1
    elif line.startswith("    ") and (i == 0 or not lines[i - 1].strip()):
      j = i
      while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
        j += 1
      blocks.append("\n".join(x[4:] for x in lines[i:j]).strip())
      i = j
    else:
      i += 1
  return blocks


@pytest.mark.slow
def test_reference_page_is_the_generated_one():
  out = subprocess.run([sys.executable, "-m", "w2s_jax.reference"], cwd=ROOT, check=True,
                       capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert _read("docs/reference.md") == out.stdout, (
      "docs/reference.md differs from the code's registries and defaults: regenerate it with "
      "`python -m w2s_jax.reference > docs/reference.md`")


def test_readme_opens_with_the_two_set_up_commands():
  first, second = code_blocks(_read("README.md"))[:2]
  assert first == MAIN_COMMAND
  assert second == TEST_COMMAND


def test_ci_runs_the_readme_test_command():
  commands = [line.strip() for line in _read(".ci/run").splitlines()
              if line.strip() and not line.strip().startswith("#")]
  assert TEST_COMMAND in commands


def _anchors(markdown: str) -> set:
  """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
  out = set()
  for m in re.finditer(r"^#{1,6} +(.+?) *$", markdown, re.M):
    text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
    out.add(text.replace(" ", "-"))
  return out


@pytest.mark.parametrize("doc", DOCS)
def test_local_links_resolve(doc):
  text = re.sub(r"```.*?```", "", _read(doc), flags=re.S)
  for target in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"[a-z]+:", target):
      continue
    path, _, anchor = target.partition("#")
    resolved = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
    assert os.path.exists(os.path.join(ROOT, resolved)), f"{doc}: link to missing {target}"
    if anchor and resolved.endswith(".md"):
      assert anchor in _anchors(_read(resolved)), f"{doc}: no heading for #{anchor} in {resolved}"


@pytest.mark.parametrize("doc", ["README.md", "BUILD_NOTES.md"])
def test_notes_speak_of_the_project_only(doc):
  found = re.findall(r"\bsessions?\b|issue #?[0-9]+", _read(doc), flags=re.I)
  assert not found, f"{doc}: {found}"
