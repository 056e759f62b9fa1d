"""Chat templates: a task's chat transcripts in the instruct model's own prompt format.

Config key `task.chat_template` (read by the chat tasks' formatters: ultrafeedback, anthropic_hh):
  ""                      plain text, "User: ...\\n\\nAssistant: ..." (the default)
  "model"                 the template of the run's tokenizer (config key `tokenizer`), as
                          `get_tokenizer` built it: a GGUF file's `tokenizer.chat_template`, or
                          a Hub model's / folder's tokenizer_config.json `chat_template` (or its
                          chat_template.jinja)
  "gguf:NAME|FILE", "hf:ORG/NAME|FOLDER", "file:PATH"
                          the template of that tokenizer spec, whatever the run's tokenizer
  a Jinja template        any other value holding "{{" or "{%", used as is

Rendering is transformers' `apply_chat_template` (its `render_jinja_template`): a sandboxed
Jinja environment with trim_blocks and lstrip_blocks, loop controls, the `tojson` filter,
`raise_exception`, a `{% generation %}` tag that renders its body, and the variables
`messages`, `add_generation_prompt`, `tools` / `documents` (None), `bos_token`, `eos_token`.
One difference, on purpose: `strftime_now` formats a fixed date (26 Jul 2024, Llama 3's own
fallback) instead of today's, so a formatted row is a function of the row alone.

A preference pair is one conversation prefix with each completion as the assistant's last turn:
both texts begin with the same rendered prefix. Only jinja2 is needed to render (imported on
first use); transformers is not.
"""
import datetime
import functools
import json
import os
import re
from typing import NamedTuple

from w2s_jax.errors import ConfigError, DataError

CHAT_TASKS = ("anthropic_hh", "ultrafeedback")  # the tasks whose formatters read the option
SPEC_PREFIXES = ("gguf:", "hf:", "file:")
FIXED_DATE = datetime.datetime(2024, 7, 26)

_bound_spec = None  # the tokenizer spec `get_tokenizer` built last: what "model" means


class ChatTemplate(NamedTuple):
  source: str  # the Jinja text
  bos_token: str = ""
  eos_token: str = ""
  origin: str = "literal"  # where it came from, for messages


def bind(tokenizer_spec: str) -> None:
  """Record the run's tokenizer (called by `tokenizers.get_tokenizer`): "model" is its template."""
  global _bound_spec
  _bound_spec = tokenizer_spec


def is_literal(option: str) -> bool:
  return "{{" in option or "{%" in option


# ------------------------------------------------------------------ finding a model's template
def _token_text(value) -> str:
  """A special token of tokenizer_config.json: a string or an AddedToken dict."""
  if isinstance(value, dict):
    return str(value.get("content", ""))
  return value if isinstance(value, str) else ""


def _from_files(read, origin: str) -> ChatTemplate | None:
  """The template of a Hugging Face tokenizer folder; `read(name)` is a file's text or None."""
  config = json.loads(read("tokenizer_config.json") or "{}")
  source = read("chat_template.jinja") or config.get("chat_template")
  if source is None and read("chat_template.json"):
    source = json.loads(read("chat_template.json")).get("chat_template")
  if isinstance(source, list):  # named templates: [{"name": "default", "template": ...}, ...]
    named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
    source = named.get("default")
  if not isinstance(source, str) or not source:
    return None
  special = json.loads(read("special_tokens_map.json") or "{}")
  token = lambda k: _token_text(config.get(k)) or _token_text(special.get(k))  # noqa: E731
  return ChatTemplate(source, token("bos_token"), token("eos_token"), origin)


def _folder_reader(folder):
  def read(name):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
      return None
    with open(path, encoding="utf-8") as f:
      return f.read()
  return read


def _hub_reader(repo):
  def read(name):
    from huggingface_hub import hf_hub_download  # noqa: PLC0415
    from huggingface_hub.errors import RemoteEntryNotFoundError  # noqa: PLC0415
    try:
      path = hf_hub_download(repo, name)
    except RemoteEntryNotFoundError:
      return None
    with open(path, encoding="utf-8") as f:
      return f.read()
  return read


@functools.lru_cache(maxsize=16)
def template_of(spec: str) -> ChatTemplate | None:
  """The chat template of tokenizer spec `spec` (the syntax of config key `tokenizer`), or None
  when its model has none."""
  if spec.startswith("gguf:"):
    from w2s_jax.models import gguf_checkpoint  # noqa: PLC0415
    source, bos, eos = gguf_checkpoint.chat_template(spec[len("gguf:"):])
    return ChatTemplate(source, bos, eos, spec) if source else None
  if spec.startswith("file:"):
    path = spec[len("file:"):]
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    return _from_files(_folder_reader(folder), spec)
  if spec.startswith("hf:"):
    name = spec[len("hf:"):]
    return _from_files(_folder_reader(name) if os.path.isdir(name) else _hub_reader(name), spec)
  return None  # "byte": a from-scratch model, no template


def resolve(option: str) -> ChatTemplate | None:
  """The template `task.chat_template` names (None: plain text)."""
  if not option:
    return None
  if is_literal(option):
    return ChatTemplate(option)
  if option == "model":
    if _bound_spec is None:
      raise ConfigError("config key 'task.chat_template': 'model' is the template of the run's "
                        "tokenizer, and none was built in this process; name one instead (e.g. "
                        "'gguf:smollm2-135m')")
    spec = _bound_spec
  elif option.startswith(SPEC_PREFIXES):
    spec = option
  else:
    raise ConfigError(f"config key 'task.chat_template': {option!r} is neither 'model', a "
                      "tokenizer spec (gguf:... | hf:... | file:...) nor a Jinja template")
  t = template_of(spec)
  if t is None:
    raise ConfigError(f"config key 'task.chat_template': the tokenizer {spec!r} carries no chat "
                      "template (not an instruct model?)")
  return t


def option_problem(option: str, tokenizer_spec: str, task_name: str) -> str | None:
  """What is wrong with `task.chat_template` for `validate` (None: nothing), without reading
  any model file."""
  if not option:
    return None
  if task_name not in CHAT_TASKS:
    return f"task {task_name!r} has no chat transcripts (chat tasks: {', '.join(CHAT_TASKS)})"
  if option == "model":
    return ("'model' is the template of the run's tokenizer, and tokenizer 'byte' has none"
            if tokenizer_spec == "byte" else None)
  if option.startswith(SPEC_PREFIXES) and not is_literal(option):
    return None
  if not is_literal(option):
    return (f"{option!r} is neither '' (plain text), 'model', a tokenizer spec (gguf:... | "
            "hf:... | file:...) nor a Jinja template")
  try:
    _compile(option)
  except Exception as e:  # noqa: BLE001  (jinja2's syntax errors, named for the config key)
    return f"the Jinja template does not compile: {e}"
  return None


# ------------------------------------------------------------------------------- rendering
@functools.lru_cache(maxsize=16)
def _compile(source: str):
  """`source` compiled as transformers' `_compile_jinja_template` compiles a chat template."""
  try:
    import jinja2  # noqa: PLC0415
  except ImportError:
    raise ImportError("task.chat_template renders with jinja2: pip install 'jinja2>=3.1.6' "
                      "(or the `hf` extra)") from None
  import jinja2.ext  # noqa: PLC0415
  from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415

  class Generation(jinja2.ext.Extension):  # {% generation %}...{% endgeneration %}: the body
    tags = {"generation"}

    def parse(self, parser):
      lineno = next(parser.stream).lineno
      body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
      return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
      return caller()

  def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)

  def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)

  env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=[Generation, jinja2.ext.loopcontrols])
  env.filters["tojson"] = tojson
  env.globals["raise_exception"] = raise_exception
  env.globals["strftime_now"] = FIXED_DATE.strftime
  return env.from_string(source)


def render(template: ChatTemplate, messages: list, add_generation_prompt: bool = False,
           where: str = "?") -> str:
  """`messages` ([{"role", "content"}, ...]) as `template` renders them."""
  compiled = _compile(template.source)
  import jinja2  # noqa: PLC0415  (present: _compile imported it)
  try:
    return compiled.render(
        messages=[{"role": str(m["role"]), "content": str(m["content"])} for m in messages],
        tools=None, documents=None, add_generation_prompt=add_generation_prompt,
        bos_token=template.bos_token, eos_token=template.eos_token)
  except jinja2.TemplateError as e:
    raise DataError(f"{where}: the chat template ({template.origin}) refused the transcript: "
                    f"{e}") from None


# ------------------------------------------------------------------------------ transcripts
def messages(value, where: str) -> list:
  """A chat transcript checked: a non-empty list of {"role": str, "content": str}."""
  if not isinstance(value, list) or not value:
    raise DataError(f"{where}: expected a non-empty list of chat messages")
  for m in value:
    if not (isinstance(m, dict) and isinstance(m.get("role"), str) and
            isinstance(m.get("content"), str)):
      raise DataError(f"{where}: a chat message must be {{'role': str, 'content': str}}, got "
                      f"{str(m)[:80]!r}")
  return [{"role": m["role"], "content": m["content"]} for m in value]


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def hh_messages(text: str, where: str) -> list:
  """An Anthropic HH transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as chat messages."""
  if text.startswith(("Human:", "Assistant:")):
    text = "\n\n" + text
  parts = _HH_TURN.split(text)
  if parts[0].strip() or len(parts) < 3:
    raise DataError(f"{where}: not a 'Human: ... Assistant: ...' transcript: {text[:80]!r}")
  return [{"role": _HH_ROLES[role], "content": content.strip()}
          for role, content in zip(parts[1::2], parts[2::2])]


def pair(template: ChatTemplate, chosen: list, rejected: list, where: str,
         strict: bool = True) -> tuple:
  """(chosen text, rejected text): one conversation prefix, each completion as the assistant's
  last turn. `strict`: the transcripts must agree before their last turn, an assistant turn in
  both (a DataError names the row otherwise); not strict, each transcript is rendered whole."""
  if strict:
    for name, ms in (("chosen", chosen), ("rejected", rejected)):
      if ms[-1]["role"] != "assistant":
        raise DataError(f"{where}: the {name} transcript ends with a {ms[-1]['role']!r} turn, "
                        "not the assistant's completion")
    if chosen[:-1] != rejected[:-1]:
      raise DataError(f"{where}: the chosen and rejected transcripts differ before their last "
                      "turn: a pair must compare two completions of one conversation")
  return (render(template, chosen, where=where), render(template, rejected, where=where))
