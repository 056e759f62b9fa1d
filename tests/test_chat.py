"""Chat templates (task.chat_template): the instruct model's own prompt format, rendered as
transformers' apply_chat_template renders it, offline on SmolLM2-Instruct's GGUF template."""
import json

import pytest

from w2s_jax import config as config_lib
from w2s_jax.data import chat, tasks
from w2s_jax.data.tokenizers import HFTokenizer, TransformersTokenizer, get_tokenizer
from w2s_jax.errors import ConfigError, DataError
from w2s_jax.models import gguf_checkpoint as gc
from tests.conftest import task_cfg

TWO_TURNS = [{"role": "user", "content": "What is 2 + 2?"},
             {"role": "assistant", "content": "4, \"of course\" <b>&</b>"}]
GGUF = "gguf:smollm2-135m"


@pytest.fixture(scope="module")
def smol():
  """(ChatTemplate of SmolLM2-Instruct's GGUF, a transformers tokenizer carrying it)."""
  from transformers import PreTrainedTokenizerFast  # noqa: PLC0415
  t = chat.template_of(GGUF)
  assert t.source == gc.chat_template("smollm2-135m")[0] and "<|im_start|>" in t.source
  assert (t.bos_token, t.eos_token) == ("<|im_start|>", "<|im_end|>")
  ht = PreTrainedTokenizerFast(tokenizer_object=gc.tokenizer("smollm2-135m"),
                               bos_token=t.bos_token, eos_token=t.eos_token,
                               chat_template=t.source)
  return t, ht


@pytest.fixture
def unbound(monkeypatch):
  monkeypatch.setattr(chat, "_bound_spec", None)


@pytest.mark.asset
@pytest.mark.parametrize("msgs, gen", [
    (TWO_TURNS, False),
    (TWO_TURNS[:1], True),
    ([{"role": "system", "content": "Be brief."}] + TWO_TURNS * 2, False),
])
@pytest.mark.slow
def test_render_equals_transformers_apply_chat_template(smol, msgs, gen):
  t, ht = smol
  ours = chat.render(t, msgs, add_generation_prompt=gen)
  assert ours == ht.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
  # and the GGUF tokenizer reads the template's markers as its special tokens, like transformers
  tok = get_tokenizer(GGUF)
  assert tok.encode(ours).tolist() == ht(ours, add_special_tokens=False)["input_ids"]
  assert tok.encode(ours).tolist().count(1) == len(msgs) + gen + (msgs[0]["role"] != "system")


def test_literal_template_renders_like_transformers():
  """Jinja features chat templates use: bos/eos variables, tojson, loop controls, namespaces,
  whitespace control, raise_exception; the same text as transformers' own renderer."""
  from transformers.utils.chat_template_utils import render_jinja_template  # noqa: PLC0415
  source = ("{{ bos_token }}{% set ns = namespace(n=0) %}{% for m in messages %}"
            "{% if m.role == 'system' %}{% continue %}{% endif %}{% set ns.n = ns.n + 1 %}\n"
            "  [{{ ns.n }}] {{ m.role | upper }}: {{ m.content | tojson }}{{ eos_token }}\n"
            "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
            "{% if messages | length > 9 %}{{ raise_exception('too long') }}{% endif %}")
  t = chat.ChatTemplate(source, "<s>", "</s>")
  msgs = [{"role": "system", "content": "x"}] + TWO_TURNS
  for gen in (False, True):
    ref, _ = render_jinja_template([msgs], chat_template=source, add_generation_prompt=gen,
                                   bos_token="<s>", eos_token="</s>")
    assert chat.render(t, msgs, add_generation_prompt=gen) == ref[0]
  assert chat.resolve(source) == chat.ChatTemplate(source)
  with pytest.raises(DataError, match="row 7: the chat template .* too long"):
    chat.render(t, TWO_TURNS * 5, where="row 7")


UF_ROWS = [{"prompt": f"q{i}", "chosen": [{"role": "user", "content": f"q{i}"},
                                          {"role": "assistant", "content": f"good {i}"}],
            "rejected": [{"role": "user", "content": f"q{i}"},
                         {"role": "assistant", "content": f"bad {i}"}],
            "_where": f"uf row {i}"} for i in range(20)]
HH_ROWS = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: a\n\nHuman: more?\n\nAssistant: kind {i}",
            "rejected": f"\n\nHuman: q{i}\n\nAssistant: a\n\nHuman: more?\n\nAssistant: rude {i}",
            "_where": f"hh row {i}"} for i in range(20)]


def test_default_output_is_the_plain_text_of_before():
  uf, hh = tasks.get("ultrafeedback"), tasks.get("anthropic_hh")
  cfg = task_cfg("ultrafeedback")
  assert cfg.chat_template == ""
  (a, b), y = uf.format(UF_ROWS[0], cfg, uf.labels(cfg))
  assert {a, b} == {"User: q0\n\nAssistant: good 0", "User: q0\n\nAssistant: bad 0"}
  assert (a if y else b) == "User: q0\n\nAssistant: good 0"
  (a, b), y = hh.format(HH_ROWS[0], task_cfg("anthropic_hh"), hh.labels(cfg))
  assert ((a, b) if y else (b, a)) == (HH_ROWS[0]["chosen"], HH_ROWS[0]["rejected"])


@pytest.mark.slow
@pytest.mark.asset
@pytest.mark.parametrize("option", [GGUF, "model"])
def test_ultrafeedback_pairs_share_the_templated_prompt(smol, option, unbound):
  t, ht = smol
  if option == "model":
    get_tokenizer(GGUF)  # the run's tokenizer: "model" is its template
  task = tasks.get("ultrafeedback")
  plain, templated = task_cfg("ultrafeedback"), task_cfg("ultrafeedback", chat_template=option)
  for row in UF_ROWS:
    (a, b), y = task.format(row, templated, task.labels(templated))
    prompt = ht.apply_chat_template(row["chosen"][:1], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    good, bad = (a, b) if y else (b, a)
    assert good == prompt + f"good {row['prompt'][1:]}<|im_end|>\n"
    assert bad == prompt + f"bad {row['prompt'][1:]}<|im_end|>\n"
    assert y == task.format(row, plain, task.labels(plain))[1]  # the same order as plain text


def test_anthropic_hh_turns_become_chat_messages(smol):
  t, _ = smol
  task, cfg = tasks.get("anthropic_hh"), task_cfg("anthropic_hh", chat_template=GGUF)
  (a, b), y = task.format(HH_ROWS[3], cfg, task.labels(cfg))
  msgs = [{"role": "user", "content": "q3"}, {"role": "assistant", "content": "a"},
          {"role": "user", "content": "more?"}]
  prompt = chat.render(t, msgs, add_generation_prompt=True)
  assert ((a, b) if y else (b, a)) == (prompt + "kind 3<|im_end|>\n",
                                       prompt + "rude 3<|im_end|>\n")
  assert chat.hh_messages("Human: hi\n\nAssistant:", "w") == [
      {"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]
  with pytest.raises(DataError, match="w: not a 'Human"):
    chat.hh_messages("no turns here", "w")


def test_a_pair_must_share_its_conversation(smol):
  task, cfg = tasks.get("ultrafeedback"), task_cfg("ultrafeedback", chat_template=GGUF)
  row = dict(UF_ROWS[0], rejected=[{"role": "user", "content": "other"},
                                   {"role": "assistant", "content": "bad"}])
  with pytest.raises(DataError, match="uf row 0: the chosen and rejected transcripts differ"):
    task.format(row, cfg, task.labels(cfg))
  row = dict(UF_ROWS[0], chosen=UF_ROWS[0]["chosen"][:1])
  with pytest.raises(DataError, match="chosen transcript ends with a 'user' turn"):
    task.format(row, cfg, task.labels(cfg))


def test_options_are_checked(unbound):
  assert chat.option_problem("", "byte", "sst2") is None
  assert chat.option_problem("model", GGUF, "ultrafeedback") is None
  assert "byte' has none" in chat.option_problem("model", "byte", "ultrafeedback")
  assert "no chat transcripts" in chat.option_problem("model", GGUF, "sst2")
  assert "neither" in chat.option_problem("chatml", GGUF, "anthropic_hh")
  assert "does not compile" in chat.option_problem("{% for %}", GGUF, "anthropic_hh")
  with pytest.raises(ConfigError, match="none was built in this process"):
    chat.resolve("model")
  chat.bind("byte")
  with pytest.raises(ConfigError, match="carries no chat template"):
    chat.resolve("model")


def test_validate_names_the_key(nlp_config):
  cfg = nlp_config("tiny")
  cfg.task.name, cfg.task.chat_template = "ultrafeedback", "model"
  cfg.tokenizer = "byte"
  with pytest.raises(ConfigError, match="task.chat_template"):
    config_lib.validate(cfg, 8)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
  """A Hugging Face tokenizer folder WITHOUT tokenizer.json (vocab.json + merges.txt +
  tokenizer_config.json, GPT-2 style), made from SmolLM2's GGUF tokenizer and template."""
  folder = tmp_path_factory.mktemp("smol_hf")
  model = json.loads(gc.tokenizer("smollm2-135m").to_str())["model"]
  (folder / "vocab.json").write_text(json.dumps(model["vocab"]), encoding="utf-8")
  merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
  (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n",
                                     encoding="utf-8")
  t = chat.template_of(GGUF)
  (folder / "tokenizer_config.json").write_text(json.dumps({
      "tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "chat_template": t.source,
      "bos_token": {"__type": "AddedToken", "content": t.bos_token, "lstrip": False,
                    "normalized": False, "rstrip": False, "single_word": False, "special": True},
      "eos_token": t.eos_token,
      "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}), encoding="utf-8")
  return folder


@pytest.mark.slow
@pytest.mark.asset
def test_hf_folder_without_tokenizer_json_loads_through_transformers(hf_folder, smol, unbound):
  t, ht = smol
  tok = get_tokenizer(f"hf:{hf_folder}")
  assert isinstance(tok, TransformersTokenizer)
  assert chat.resolve("model") == t._replace(origin=f"hf:{hf_folder}")
  text = chat.render(t, TWO_TURNS[:1] + [{"role": "assistant", "content": "Four, of course."}])
  assert tok.encode(text).tolist() == get_tokenizer(GGUF).encode(text).tolist()
  assert tok.decode(tok.encode(text)) == text
  from transformers import AutoTokenizer  # noqa: PLC0415
  auto = AutoTokenizer.from_pretrained(str(hf_folder))
  assert auto.apply_chat_template(TWO_TURNS, tokenize=False) == chat.render(t, TWO_TURNS)
  (hf_folder / "chat_template.jinja").write_text("{{ messages[0].content }}", encoding="utf-8")
  chat.template_of.cache_clear()  # chat_template.jinja comes first, as in transformers
  assert chat.template_of(f"hf:{hf_folder}").source == "{{ messages[0].content }}"
  (hf_folder / "chat_template.jinja").unlink()
  chat.template_of.cache_clear()


@pytest.mark.slow
@pytest.mark.asset
def test_a_text_opening_with_bos_gets_no_second_one():
  from tokenizers.processors import TemplateProcessing  # noqa: PLC0415
  raw = gc.tokenizer("smollm2-135m")
  raw.post_processor = TemplateProcessing(single="<|im_start|> $A",
                                          special_tokens=[("<|im_start|>", 1)])
  tok = HFTokenizer(raw)
  assert tok.encode("hi").tolist()[:1] == [1]
  ids = tok.encode("<|im_start|>user\nhi").tolist()
  assert ids[0] == 1 and ids[1] != 1


@pytest.mark.slow
@pytest.mark.asset
def test_templated_pairs_through_load_splits(tmp_path, unbound):
  """ultrafeedback from JSONL with the run's GGUF tokenizer and "model": every text of both
  sides opens with the template's <|im_start|> (id 1) and the pair shares its prompt tokens."""
  from w2s_jax.data import dataset as data_lib  # noqa: PLC0415
  for split, rows in (("train", UF_ROWS * 2), ("test", UF_ROWS[:10])):
    (tmp_path / f"{split}.jsonl").write_text("".join(
        json.dumps({k: v for k, v in dict(r, _where="").items() if k != "_where"}) + "\n"
        for r in rows), encoding="utf-8")
  cfg = task_cfg("ultrafeedback", chat_template="model", train_file=str(tmp_path / "train.jsonl"),
                 test_file=str(tmp_path / "test.jsonl"))
  tok = get_tokenizer(GGUF)
  splits = data_lib.load_splits(cfg, tok, 128, 0)
  system = chat.render(chat.template_of(GGUF), [{"role": "user", "content": ""}])
  system = system[:system.index("<|im_start|>user")]
  turn = "<|im_start|>assistant\n"
  for ds in (splits.a, splits.b, splits.test):
    assert (ds.tokens[:, 0] == 1).all()  # <|im_start|>, one token
    for tokens, lengths in zip(ds.tokens, ds.lengths):
      a, b = (tok.tok.decode(tokens[:n, j].tolist(), skip_special_tokens=False)
              for j, n in enumerate(lengths))
      prompt = a[:a.index(turn) + len(turn)]
      assert prompt.startswith(system + "<|im_start|>user\nq") and b.startswith(prompt)
      assert {a[len(prompt):].split()[0], b[len(prompt):].split()[0]} == {"good", "bad"}
