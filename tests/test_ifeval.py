"""Instruction following with verifiable constraints: the rules by hand counts in several scripts,
the prompt files, the task folder under the real `lm_eval` command line, and `occi eval --suite
ifeval` through to the card and the leaderboard, on a tiny model that always answers in German."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from occi import languages
from occi.eval import ifeval
from occi.eval.ifeval_rules import CHECKS, follows, score
from tests.chat_models import GERMAN, tiny_chat_model
from tests.conftest import REPO

EVAL = REPO / "eval"


@pytest.fixture(scope="module")
def identify():
    from occi.corpora.langid import LanguageIdentifier, default_model_path

    identifier = LanguageIdentifier(default_model_path(), list(languages.LANGUAGES))
    return lambda text: identifier.predict(text)[0]


@pytest.fixture(scope="module")
def german_model(tmp_path_factory) -> Path:
    return tiny_chat_model(tmp_path_factory.mktemp("ifeval") / "german", GERMAN, extra=[GERMAN])


# ------------------------------------------------------------------ the rules, by hand counts

HAND = [
    # (language, instruction, kwargs, response, follows?)
    ("de", "length:words_at_least", {"n": 5}, "Das ist ein kurzer Satz.", True),           # 5 words
    ("de", "length:words_at_least", {"n": 6}, "Das ist ein kurzer Satz.", False),
    ("fr", "length:words_at_most", {"n": 4}, "L'eau est très froide.", True),              # l'eau is one word
    ("ga", "length:words_at_most", {"n": 2}, "An t-uisce fuar.", False),                   # 3: t-uisce is one
    ("bg", "length:words_at_most", {"n": 3}, "Това е добре.", True),
    ("el", "length:sentences_at_most", {"n": 2}, "Τι κάνεις; Είμαι καλά. Ευχαριστώ!", False),  # ; ends a Greek question
    ("el", "length:sentences_at_most", {"n": 3}, "Τι κάνεις; Είμαι καλά. Ευχαριστώ!", True),
    ("fr", "length:sentences_at_most", {"n": 1}, "Attention ; il pleut.", True),            # ; is no end in French
    ("pl", "length:paragraphs_exactly", {"n": 3}, "Pierwszy.\n\nDrugi.\n\nTrzeci.", True),
    ("pl", "length:paragraphs_exactly", {"n": 3}, "Pierwszy.\nDrugi.\n\nTrzeci.", False),   # a line break is no paragraph
    ("sv", "format:bullets_exactly", {"n": 4}, "* ett\n* två\n- tre\n* fyra", True),
    ("sv", "format:bullets_exactly", {"n": 4}, "* ett\n* två\n**tre**\n* fyra", False),     # bold is no bullet
    ("it", "format:json", {}, '{"risposta": "sì"}', True),
    ("it", "format:json", {}, '```json\n["uno", "due"]\n```', True),
    ("it", "format:json", {}, "risposta: sì", False),
    ("hu", "format:title", {}, "<<Az ideális hétvége>>\nSzombaton...", True),
    ("hu", "format:title", {}, "<Az ideális hétvége>\nSzombaton...", False),
    ("de", "case:upper", {}, "STRASSE UND FLUSS", True),
    ("de", "case:upper", {}, "STRAßE UND FLUSS", False),                                  # ß is a lower-case letter
    ("el", "case:upper", {}, "ΚΑΛΗΜΕΡΑ ΣΕ ΟΛΟΥΣ", True),
    ("el", "case:lower", {}, "καλημέρα σε όλους", True),
    ("el", "case:lower", {}, "Καλημέρα σε όλους", False),
    ("bg", "case:lower", {}, "добро утро на всички", True),
    ("bg", "case:upper", {}, "ДОБРО утро", False),
    ("hr", "case:lower", {}, "ǅep je pun", False),                                        # a title-case digraph letter
    ("de", "case:lower", {}, "123 !?", False),                                            # no cased letter: unmet
    ("he", "case:lower", {}, "שלום לכולם", False),                                         # Hebrew has no case
    ("pl", "keywords:include", {"word": "zdrowie"}, "Rower to Zdrowie i radość.", True),  # case-folded
    ("pl", "keywords:include", {"word": "zdrowie"}, "Dbam o zdrowiem.", False),           # no stemming: the form asked
    ("el", "keywords:include", {"word": "ΦΩΣ"}, "Το φως του ήλιου.", True),
    ("sv", "keywords:forbid", {"word": "bil"}, "Jag cyklar, bilen står kvar.", True),     # whole words only
    ("sv", "keywords:forbid", {"word": "bil"}, "Jag tar inte bil.", False),
    ("cs", "keywords:include", {"word": "slovní zásoba"}, "Důležitá je slovní zásoba.", True),
    ("de", "ending:phrase", {"phrase": "Gibt es noch Fragen?"}, "Das war alles. Gibt es noch Fragen?\n", True),
    ("de", "ending:phrase", {"phrase": "Gibt es noch Fragen?"}, "Gibt es noch Fragen? Tschüss.", False),
    ("mt", "content:placeholders_at_least", {"n": 2}, "Għażiż [isem], niltaqgħu f'[post].", True),
    ("mt", "content:placeholders_at_least", {"n": 2}, "Għażiż [isem], niltaqgħu għada.", False),
]


@pytest.mark.parametrize("language,instruction,kwargs,response,expected", HAND,
                         ids=[f"{h[0]}-{h[1]}-{i}" for i, h in enumerate(HAND)])
def test_each_rule_by_hand(language, instruction, kwargs, response, expected):
    assert follows(instruction, response, kwargs, language, None) is expected


def test_every_instruction_kind_has_hand_counts_both_ways():
    kinds = {(h[1], h[4]) for h in HAND} | {("language:response", True), ("language:response", False),
                                             ("case:upper", True)}
    assert {kind for kind, _ in kinds} == set(CHECKS)
    assert all((kind, True) in kinds and (kind, False) in kinds for kind in CHECKS)


@pytest.mark.parametrize("code,text", [
    ("de", "Das Fahrrad ist gut für die Gesundheit, und man spart dabei noch Geld."),
    ("lv", "Braukšana ar velosipēdu ir laba veselībai, un tā ietaupa arī naudu."),
    ("el", "Το ποδήλατο κάνει καλό στην υγεία και εξοικονομεί χρήματα."),
])
def test_the_response_language_is_occis_language_id(identify, code, text):
    assert follows("language:response", text, {"language": code}, code, identify)
    assert not follows("language:response", text, {"language": "fi"}, "fi", identify)


def test_loose_scoring_forgives_a_preamble_and_markdown_as_ifeval_does():
    doc = {"language": "de", "instruction_id_list": ["format:json", "length:words_at_most"],
           "kwargs": [{}, {"n": 3}]}
    response = 'Gerne, hier ist das JSON:\n{"a": "eins zwei"}'
    assert score(doc, response, None) == {"prompt_level_strict_acc": False, "inst_level_strict_acc": [False, False],
                                          "prompt_level_loose_acc": True, "inst_level_loose_acc": [True, True]}
    assert score(doc, "", None)["inst_level_loose_acc"] == [False, False]  # an empty answer follows nothing


def test_case_instructions_are_left_out_in_a_script_without_case(monkeypatch):
    from dataclasses import replace

    greek = languages.get("el")
    monkeypatch.setattr(ifeval.languages, "get", lambda code: replace(greek, script="Geor") if code == "el" else greek)
    ids = {i for p in ifeval.prompts("el", EVAL) for i in p["instruction_id_list"]}
    assert not ids & {"case:lower", "case:upper"} and "format:json" in ids
    monkeypatch.undo()
    assert {"case:lower", "case:upper"} <= {i for p in ifeval.prompts("el", EVAL) for i in p["instruction_id_list"]}


# ------------------------------------------------------------------ the prompts

def test_every_official_language_has_the_suite_from_upstream_or_occi():
    assert set(ifeval.OWN) | (set(ifeval.UPSTREAM) & set(languages.EU_OFFICIAL)) == set(languages.EU_OFFICIAL)
    assert not set(ifeval.OWN) & set(ifeval.UPSTREAM)
    upstream = Path(__import__("lm_eval.tasks", fromlist=["x"]).__file__).parent / "ifeval"
    shipped = {line.split(":", 1)[1].strip() for p in upstream.rglob("*.yaml")
               for line in p.read_text().splitlines() if line.startswith("task:")}
    assert set(ifeval.UPSTREAM.values()) <= shipped


@pytest.mark.parametrize("code", ifeval.OWN)
def test_prompts_of_a_language(code, identify):
    """At least 50 distinct prompts, only known instructions with their arguments, keywords and the
    end phrase written into the prompt, and the prompt text read as its language by occi's language ID."""
    rows = [json.loads(line) for line in (EVAL / "data" / "ifeval" / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 50 and len({r["prompt"] for r in rows}) == len(rows)
    table = ifeval.phrases(code, EVAL)
    assert len(table["requests"]) == 10 and set(table["instructions"]) == set(ifeval.KINDS)
    for row in rows:
        assert row["language"] == code and set(row["instruction_id_list"]) <= set(CHECKS)
        for instruction, kwargs in zip(row["instruction_id_list"], row["kwargs"]):
            for key in ("word", "phrase"):
                if kwargs[key]:
                    assert kwargs[key] in row["prompt"]
            if instruction == "language:response":
                assert kwargs["language"] == code
    assert identify(" ".join(table["instructions"].values()).replace("{", "").replace("}", "")) == code
    # lid.176 reads some short Maltese prompts as Polish and Slovak ones as Czech (87 and 89 of 100)
    assert sum(identify(r["prompt"]) == code for r in rows) >= 0.8 * len(rows)


# ------------------------------------------------------------------ the task folder under lm-eval

def _expected_first(count: int) -> tuple[list[bool], list[list[bool]]]:
    """The German model's answer (GERMAN four times: 44 words, 4 sentences, one paragraph, no
    capital-free letters) against the first German prompts, counted by hand: request 0 under the
    ten instruction sets in COMBOS' order."""
    by_hand = [[False, False],  # >= 100 words, "Gesundheit"
               [True, True],    # <= 50 words, in German
               [True, True],    # <= 5 sentences, no "Auto"
               [False, False],  # 3 paragraphs, a title
               [False, False],  # 4 bullets, the end phrase
               [False, False],  # JSON, "Gesundheit"
               [False, False],  # lower case, 2 placeholders
               [False, True],   # upper case, <= 150 words
               [False, False, True],   # title, 4 bullets, no "Auto"
               [False, False, True]]   # 2 placeholders, end phrase, in German
    return [all(i) for i in by_hand[:count]], by_hand[:count]


def test_plain_lm_eval_runs_the_task_folder(german_model, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args", f"pretrained={german_model},dtype=float32",
         "--tasks", "occi_ifeval_de", "--include_path", str(EVAL / "tasks" / "occi_ifeval"), "--limit", "3",
         "--gen_kwargs", "max_gen_toks=4", "--device", "cpu", "--batch_size", "1", "--output_path", str(out),
         "--log_samples"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(next(out.rglob("results_*.json")).read_text())["results"]["occi_ifeval_de"]
    prompt_level, inst_level = _expected_first(3)
    assert scores["prompt_level_strict_acc,none"] == pytest.approx(sum(prompt_level) / 3)
    flat = [ok for item in inst_level for ok in item]
    assert scores["inst_level_strict_acc,none"] == pytest.approx(sum(flat) / len(flat))
    samples = [json.loads(line) for line in next(out.rglob("samples_occi_ifeval_de_*.jsonl")).read_text().splitlines()]
    assert [s["inst_level_strict_acc"] for s in sorted(samples, key=lambda s: s["doc_id"])] == inst_level
    assert samples[0]["resps"][0][0].strip() == (GERMAN * 4).strip()


# ------------------------------------------------------------------ occi eval -> card and leaderboard

def test_occi_eval_runs_the_suite_and_the_card_and_leaderboard_show_it(german_model, tmp_path):
    import shutil

    from occi import config as run_config
    from occi.eval import runner
    from occi.report import card

    path = tmp_path / "ifeval.yaml"
    path.write_text(yaml.safe_dump({"name": "ifeval-test", "languages": ["de"], "corpora": "demo",
                                    "eval": {"suites": ["ifeval"], "limit": 10, "ifeval_max_new_tokens": 4}}),
                    encoding="utf-8")
    cfg, run = run_config.load_for_run(str(path), tmp_path / "run")
    shutil.copytree(german_model, run.hf)
    result = runner.run(cfg, run)
    assert result.complete and run.is_done("eval")
    table = json.loads(run.eval_table("hf").read_text(encoding="utf-8"))
    prompt_level, inst_level = _expected_first(10)
    (cell,) = table["cells"]
    flat = [ok for item in inst_level for ok in item]
    assert (cell["task"], cell["metric"], cell["answers"]) == ("occi_ifeval_de", "prompt_level_strict_acc", 10)
    assert cell["value"] == pytest.approx(sum(prompt_level) / 10) == pytest.approx(0.2)
    assert cell["instruction_level"] == pytest.approx(sum(flat) / len(flat)) == pytest.approx(7 / 22)
    samples = next(run.eval_cell("ifeval", "hf", "de", "ifeval").rglob("samples_occi_ifeval_de_*.jsonl"))
    first = json.loads(samples.read_text().splitlines()[0])
    assert "<|im_start|>assistant" in first["arguments"]["gen_args_0"]["arg_0"]  # through the chat template

    card.run(cfg, run)
    section = run.card.read_text(encoding="utf-8").split("## Instruction following")[1].split("\n## ")[0]
    assert "| German (de) | 0.20 | [0.06, 0.51] | 0.32 | 10 | occi_ifeval_de (occi) |" in section
    assert (run.report / "instruction_following.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    board = (run.report / "leaderboard.md").read_text(encoding="utf-8")
    assert "Instruction following (prompt-level strict accuracy" in board
    assert "| occi-ifeval-test | 0.200 [0.00, 0.46] |" in board  # 0.2 ± 1.96 x lm-eval's standard error 0.133
    summary = json.loads((run.report / "leaderboard.json").read_text(encoding="utf-8"))
    assert summary["models"][0]["own_average"] is None  # shown in its own table, not averaged


def test_corpus_decontamination_looks_for_occis_prompts():
    from occi.corpora.config import DecontaminationConfig
    from occi.corpora.decontaminate import local_benchmarks

    (found,) = local_benchmarks(["ifeval"], ["de", "en"], DecontaminationConfig(), "")
    assert found.name == "occi_ifeval" and len(found.items) == 100  # English's prompts are lm-eval's, on the hub
    assert found.items[0].startswith("Schreib einen kurzen Text")
