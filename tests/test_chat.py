"""occi distill, occi generate with s1 budget forcing, and answer-language fidelity, on tiny
transformers models with crafted weights (tests/chat_models.py): real forward passes, real
fastText, deterministic behaviour."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from occi.errors import OcciError
from tests.chat_models import GERMAN, tiny_chat_model
from tests.conftest import REPO, occi


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """`german`: answers everything with the same German sentence; `closer`: writes `</think>` at
    every step (it tries to end its thinking at once)."""
    root = tmp_path_factory.mktemp("chat-models")
    return {"german": tiny_chat_model(root / "german", GERMAN, extra=[GERMAN]),
            "closer": tiny_chat_model(root / "closer", "</think>")}


# ------------------------------------------------------------------ budget forcing

def _generate(folder: Path, prompt: str, **options):
    from occi.chat import budget
    from occi.chat.models import encode_prompt, load, prompt_text

    model, tokenizer = load(folder, "cpu")
    ids = encode_prompt(tokenizer, prompt_text(tokenizer, [{"role": "user", "content": prompt}]))
    return budget.generate(model, tokenizer, ids, **options), tokenizer


def test_min_thinking_appends_the_continuation_word_until_the_minimum(models):
    from occi.chat.budget import Budget

    result, tokenizer = _generate(models["closer"], "Wie geht es dir?", max_new_tokens=40,
                                  budget=Budget(min_thinking_tokens=7), wait="Warte")
    per_wait = len(tokenizer.encode("Warte", add_special_tokens=False))
    waits = -(-7 // per_wait)  # the model closes at once every time: one "Warte" per attempt until 7 tokens
    assert result.waits == waits
    assert result.thinking == "Warte" * waits
    assert result.thinking_tokens == waits * per_wait >= 7
    assert not result.forced_end
    without, _ = _generate(models["closer"], "Wie geht es dir?", max_new_tokens=40, budget=Budget(), wait="Warte")
    assert (without.waits, without.thinking, without.thinking_tokens) == (0, "", 0)


def test_max_thinking_forces_the_end_and_the_answer_follows(models):
    from occi.chat.budget import Budget

    result, _ = _generate(models["german"], "Was ist los?", max_new_tokens=9, budget=Budget(max_thinking_tokens=4))
    assert result.forced_end and result.thinking_tokens == 4
    assert result.thinking == GERMAN * 4
    assert result.answer == GERMAN * 4  # 9 tokens: 4 thinking, the forced </think>, 4 of answer
    assert result.new_tokens == 9
    with pytest.raises(OcciError, match="--min-thinking-tokens 9 is above --max-thinking-tokens 3"):
        Budget(9, 3)
    plain, _ = _generate(models["german"], "Was ist los?", max_new_tokens=3)
    assert plain.thinking is None and plain.answer == GERMAN * 3


def test_generate_command_picks_the_wait_word_of_the_prompts_language(models, tmp_path):
    result = occi("generate", "demo", "--run-dir", str(tmp_path / "run"), "--model", str(models["closer"]),
                  "--prompt", "Explique brièvement pourquoi le ciel est bleu, s'il te plaît.",
                  "--min-thinking-tokens", "3", "--max-new-tokens", "30", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["language"] == "fr" and out["wait_word"] == "Attends"
    assert out["thinking"].startswith("Attends") and out["waits"] >= 1 and out["thinking_tokens"] >= 3
    from occi.chat.generate import model_folder
    from occi.rundir import RunDir

    with pytest.raises(OcciError, match="no exported model; run `occi export`"):
        model_folder(RunDir(tmp_path / "run"), None)


# ------------------------------------------------------------------ distill

def _distill_config(folder: Path, teacher: Path) -> Path:
    """A run of two languages: German prompts as JSONL (a plain prompt, a chat whose old answer
    is dropped), French ones as Parquet; one prompt per batch, so a kill can fall between batches;
    the language check off (the German teacher answers the French prompts too)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.conftest import write_jsonl

    write_jsonl(folder / "prompts" / "de.jsonl", [
        {"prompt": "Erkläre kurz, warum der Himmel blau ist."},
        {"messages": [{"role": "system", "content": "Sei knapp."}, {"role": "user", "content": "Was ist Wasser?"},
                      {"role": "assistant", "content": "alte Antwort"}]},
        {"prompt": "Wie kocht man eine Suppe?"}])
    pq.write_table(pa.table({"prompt": ["Pourquoi le ciel est-il bleu ?", "Comment faire une soupe ?",
                                        "Qu'est-ce que l'eau ?"]}), folder / "prompts" / "fr.parquet")
    config = {"name": "distill-test", "languages": ["de", "fr"], "corpora": "demo",
              "distill": {"teacher": str(teacher), "prompts": {"de": "prompts/de.jsonl", "fr": "prompts/fr.parquet"},
                          "batch_size": 1, "max_new_tokens": 6, "temperature": 0.7, "top_p": 0.9,
                          "system": "Antworte hilfsbereit.", "check_language": False}}
    path = folder / "distill.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _rows(run: Path) -> list[dict]:
    rows = []
    for code in ("de", "fr"):
        for line in (run / "distill" / f"{code}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            row["provenance"].pop("date")  # when a batch was written: differs between runs by design
            rows.append(row)
    return rows


def test_distill_writes_rows_with_provenance_and_resumes_after_a_kill(models, tmp_path):
    from occi import config as run_config
    from occi.chat import distill
    from occi.rundir import RunDir
    from occi.sharding import Share

    path = _distill_config(tmp_path, models["german"])
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "occi.cli", "distill", str(path), "--run-dir", str(killed)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = killed / "distill" / "parts"
    deadline = time.monotonic() + 300
    while process.poll() is None and not list(parts.glob("*/*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written_before = len(list(parts.glob("*/*.jsonl")))
    assert written_before >= 1
    (parts / "fr").mkdir(parents=True, exist_ok=True)
    (parts / "fr" / ".000001.jsonl.half.tmp").write_text('{"messages": [', encoding="utf-8")  # a torn write
    result = occi("distill", str(path), "--run-dir", str(killed))
    assert result.returncode == 0, result.stderr
    assert not list(parts.glob("*/.*.tmp"))

    # the same rows as an uninterrupted run, and as two SLURM array tasks joined
    cfg, clean = run_config.load_for_run(str(path), tmp_path / "clean")
    assert distill.run(cfg, clean).complete
    cfg, shared = run_config.load_for_run(str(path), tmp_path / "shared")
    assert not distill.run(cfg, shared, Share(1, 2)).complete
    assert not (shared.distill / "_DONE").exists()
    assert distill.run(cfg, shared, Share(0, 2)).complete is False
    assert distill.run(cfg, shared).complete
    assert _rows(killed) == _rows(clean.root) == _rows(shared.root)
    assert distill.shard_count(cfg, clean) == 6
    from occi.preflight.manifest import Item, needed_items

    assert Item("model", str(models["german"].resolve())) in needed_items(cfg, with_eval=False)  # `occi fetch` lists it

    rows = _rows(clean.root)
    assert [r["language"] for r in rows] == ["de"] * 3 + ["fr"] * 3
    assert len({json.dumps(r["messages"][:-1]) for r in rows}) == 6  # no duplicates
    water = rows[1]["messages"]
    assert [m["role"] for m in water] == ["system", "user", "assistant"] and water[0]["content"] == "Sei knapp."
    assert "alte Antwort" not in water[-1]["content"] and water[-1]["content"] == (GERMAN * 6).strip()
    assert rows[0]["messages"][0] == {"role": "system", "content": "Antworte hilfsbereit."}
    provenance = rows[4]["provenance"]
    assert provenance["teacher"] == str(models["german"].resolve()) and provenance["revision"] is None
    assert provenance["sampling"] == {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 6}
    assert provenance["seed"] == cfg.seed + 4 and provenance["prompt_file"] == "fr.parquet"
    assert provenance["prompt_index"] == 1 and provenance["backend"] == "transformers"
    date = json.loads((clean.distill / "de.jsonl").read_text(encoding="utf-8").splitlines()[0])["provenance"]["date"]
    assert time.strptime(date, "%Y-%m-%dT%H:%M:%SZ")
    stats = json.loads(clean.distill_stats.read_text(encoding="utf-8"))
    assert stats["languages"]["de"] == {"prompts": 3, "rows": 3, "with_reasoning": 0, "verifiable": 0,
                                        "dropped": {"empty": 0, "language/answer": 0, "verify/no_number": 0,
                                                    "verify/wrong_number": 0},
                                        "answer_chars": 3 * len((GERMAN * 6).strip()), "file": "distill/de.jsonl"}
    assert stats["languages"]["fr"]["rows"] == 3  # German answers to French prompts: kept without the check


def test_distill_config_mistakes_are_one_line(models, tmp_path):
    path = _distill_config(tmp_path, models["german"])
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["distill"]["prompts"]["it"] = "prompts/it.jsonl"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = occi("distill", str(path), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "distill.prompts: it is not a language of this run (de, fr)" in result.stderr


# ------------------------------------------------------------------ R1-style checks and pairs

THOUGHT = "Sechs mal sieben, ich rechne kurz nach."
ANSWER_42 = "Die Antwort ist ganz einfach, es sind genau 42 Stück."
ENGLISH_7 = "The answer is quite simple: there are exactly 7 of them."


@pytest.fixture(scope="module")
def reasoning_run(tmp_path_factory) -> tuple[object, object]:
    """(config, run directory) of configs/demo-distill.yaml's distillation with a tiny reasoning
    teacher that answers every prompt in German with 42, and pairs whose candidates a weaker model
    writes in English with 7 (greedy, so one candidate each).

    By hand, from the bundled prompts (configs/prompts/{de,en,fr}.jsonl: 6 plain prompts each;
    configs/prompts/numbers/*.jsonl: 6 with answers 42, 30, 9, 12, 48, 4.50): in de the 6 plain
    prompts and the one whose answer is 42 are kept, 5 answers have the wrong number; every en and
    fr answer is German (12 + 12 dropped for language); 7 pairs in de, their rejected answer English."""
    from occi import config as run_config
    from occi.chat import distill
    from tests.chat_models import scripted_chat_model

    root = tmp_path_factory.mktemp("reasoning")
    scripted_chat_model(root / "teacher", ["<think>", THOUGHT, "</think>", ANSWER_42])
    scripted_chat_model(root / "weaker", [ENGLISH_7])
    config = yaml.safe_load((REPO / "configs" / "demo-distill.yaml").read_text(encoding="utf-8"))
    config["distill"] |= {"teacher": "teacher", "max_new_tokens": 8,
                          "prompts": {code: [str(REPO / "configs" / f) for f in files]
                                      for code, files in config["distill"]["prompts"].items()},
                          "pairs": {"model": "weaker", "samples": 1, "temperature": 0.0}}
    config["dpo"] = {"sources": [{"name": "distilled", "kind": "distill"}], "checks": {"rejected_language": False}}
    path = root / "demo-distill.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    cfg, run = run_config.load_for_run(str(path), root / "run")
    assert distill.run(cfg, run).complete
    return cfg, run


def test_reasoning_is_kept_and_every_check_drops_its_rows(reasoning_run):
    _, run = reasoning_run
    stats = json.loads(run.distill_stats.read_text(encoding="utf-8"))
    none = {"empty": 0, "language/answer": 0, "verify/no_number": 0, "verify/wrong_number": 0}
    assert stats["languages"]["de"] == {
        "prompts": 12, "rows": 7, "dropped": {**none, "verify/wrong_number": 5}, "with_reasoning": 7,
        "verifiable": 6, "answer_chars": 7 * len(ANSWER_42), "file": "distill/de.jsonl",
        "pairs": {"written": 7, "no_failing_candidate": 0, "rejected_because": {"language/answer": 7},
                  "file": "distill/pairs/de.jsonl"}}
    for code in ("en", "fr"):
        assert stats["languages"][code]["rows"] == 0
        assert stats["languages"][code]["dropped"] == {**none, "language/answer": 12}
        assert (run.distill / f"{code}.jsonl").read_text(encoding="utf-8") == ""
    rows = [json.loads(line) for line in (run.distill / "de.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["messages"][-1] for r in rows] == [{"role": "assistant", "content": ANSWER_42, "reasoning": THOUGHT}] * 7
    assert [r["provenance"].get("verified_answer") for r in rows] == [None] * 6 + [42]


def test_distilled_pairs_are_read_by_dpo_and_the_rows_by_sft(reasoning_run):
    from occi.chat.models import load
    from occi.corpora.langid import LanguageIdentifier
    from occi.dpo import data as dpo_data
    from occi.sft import data as sft_data
    from occi.sft.stage import with_distill_files

    cfg, run = reasoning_run
    pairs = [json.loads(line) for line in run.distill_pairs("de").read_text(encoding="utf-8").splitlines()]
    assert [(p["chosen"], p["rejected"], p["language"]) for p in pairs] == [(ANSWER_42, ENGLISH_7, "de")] * 7
    assert pairs[-1]["prompt"] == [{"role": "user", "content": "Wie viel ist 30 plus 12? Bitte antworte mit einem "
                                                               "ganzen Satz."}]
    provenance = pairs[0]["provenance"]
    assert provenance["chosen_by"] == provenance["teacher"] and provenance["rejected_by"] == "weaker"
    assert (provenance["rejected_because"], provenance["candidate"]) == ("language/answer", 0)

    _, tokenizer = load(Path(cfg.distill.base_dir) / "teacher", "cpu")
    langid = LanguageIdentifier.from_config(cfg.corpora.langid, cfg.languages, cfg.corpora.base_dir)
    (run.root / "dpo-data").mkdir()
    stats = dpo_data.prepare(with_distill_files(cfg.dpo, run.distill_pairs("*")), cfg.languages, tokenizer, 128,
                             cfg.seed, langid, run.root / "dpo-data")
    assert stats["languages"]["de"]["kept"] == 7 and stats["totals"]["drops"] == {}
    assert stats["sources"]["distilled"]["provenance"] == {
        f"chosen: {provenance['teacher']}; rejected: weaker (language/answer)": 7}
    from occi.report.dpo_section import dpo_section

    run.dpo_stats.parent.mkdir(parents=True)
    run.dpo_stats.write_text(json.dumps(stats), encoding="utf-8")
    (run.dpo / "_DONE").write_text("", encoding="utf-8")  # as a finished `occi dpo` leaves it
    card = "\n".join(dpo_section(cfg, run, run.root))
    assert f"| distilled | jsonl | 1 | 7 | chosen: {provenance['teacher']}; rejected: weaker (language/answer): 7 |" \
        in card, card
    relative = with_distill_files(cfg.sft, Path("runs") / "x" / "distill" / "*.jsonl").sources[0]
    assert (relative.kind, relative.path) == ("jsonl", str(Path.cwd() / "runs" / "x" / "distill" / "*.jsonl"))
    (run.root / "sft-data").mkdir()
    stats = sft_data.prepare(with_distill_files(cfg.sft, run.distill_rows("*")), cfg.languages, tokenizer, 128,
                             cfg.seed, langid, run.root / "sft-data")
    assert stats["languages"] == {"de": {**stats["languages"]["de"], "rows_in": 7, "kept": 7}}


def test_the_number_rule():
    from occi.chat.answer_checks import last_number, parse_number, split_reasoning, verify

    assert [parse_number(t) for t in ("42", "-3", "3,5", "3.14", "1.000", "1,000,000", "1.000,5", "1,000.5")] == \
        [42, -3, 3.5, 3.14, 1000, 1000000, 1000.5, 1000.5]
    assert last_number("Erst 6, dann 7, also 42.") == 42 and last_number("keine Zahl") is None
    assert verify("Es sind 2,50 Euro.", 2.5) is None and verify("Es sind 3 Euro.", 2.5) == "verify/wrong_number"
    assert verify("Drei Euro.", 2.5) == "verify/no_number"
    assert split_reasoning("<think>a</think>b") == ("a", "b") and split_reasoning("b") == (None, "b")
    harmony = "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>answer"
    assert split_reasoning(harmony) == ("think", "answer")


def test_the_bundled_number_prompts_are_read_as_their_language():
    from occi.chat.prompts import read_prompt_rows
    from occi.corpora.langid import LanguageIdentifier, default_model_path

    langid = LanguageIdentifier(default_model_path(), ["de", "en", "es", "fr", "it", "pl"])
    for path in sorted((REPO / "configs" / "prompts" / "numbers").glob("*.jsonl")):
        for chat, expected in read_prompt_rows(path):
            assert langid.predict(chat[-1]["content"])[0] == path.stem and expected is not None, (path, chat)


# ------------------------------------------------------------------ answer-language fidelity

PROMPTS_PER_KIND = 38
"""114 prompts per language: the exact McNemar test's 80% power for a 10-point difference when the
two models' failures cross, 12% one way and 2% the other (docs/stages/evaluation.md)."""


def test_fidelity_prompts_are_read_as_their_language():
    """occi's own prompts: 38 of each kind per language of the table, none repeated, each identified
    as its language by the demo's language ID as the eval uses it (a prompt it misreads would make
    every model look unfaithful)."""
    from occi import config as run_config
    from occi import languages
    from occi.eval import fidelity

    ident = fidelity.identifier(run_config.load("demo-sft"))
    misread = []
    for code in languages.LANGUAGES:
        rows = fidelity.load_prompts(code)
        assert len({p.text for p in rows}) == len(rows), code
        assert {kind: sum(p.kind == kind for p in rows) for kind in fidelity.KINDS} \
            == dict.fromkeys(fidelity.KINDS, PROMPTS_PER_KIND), code
        misread += [(code, p.text, ident.predict(p.text)[0]) for p in rows if ident.predict(p.text)[0] != code]
    assert misread == []


def test_fidelity_interval_is_wilsons_by_hand():
    """Wilson's interval, (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with z = 1.959964,
    worked by hand: 45 of 50 gives centre 0.87146 and half-width 0.08506; 0 of 4 gives
    [0, z²/(4 + z²)] = [0, 3.841459/7.841459]; a capped run keeps the kinds' mix; the shipped count
    is the fewest paired prompts at which the exact McNemar test has 80% power for 10 points when
    12% of prompts favour one model and 2% the other; nested failures need only 78."""
    from occi.eval import fidelity
    from occi.eval.intervals import paired_prompts_needed, wilson

    assert paired_prompts_needed(0.12, 0.02) == 3 * PROMPTS_PER_KIND  # the shipped count, from the statistics
    assert paired_prompts_needed(0.10, 0.0) == 78
    assert wilson(45, 50) == pytest.approx((0.87146 - 0.08506, 0.87146 + 0.08506), abs=2e-5)
    assert wilson(0, 4) == pytest.approx((0.0, 0.489891), abs=1e-6)
    assert wilson(4, 4) == pytest.approx((1 - 0.489891, 1.0), abs=1e-6)
    samples = [{"kind": fidelity.KINDS[i % 3], "fidelity": float(i % 10 != 0)} for i in range(50)]
    result = fidelity.summarize(samples)
    assert result["value"] == 0.9 and result["interval"] == pytest.approx(list(wilson(45, 50)))
    assert [p.kind for p in fidelity.load_prompts("mt", 5)] == ["everyday", "technical", "reasoning",
                                                                "everyday", "technical"]


def test_fidelity_prompt_file_mistakes_are_one_line(monkeypatch, tmp_path):
    from occi.eval import fidelity

    path = tmp_path / "de.jsonl"
    monkeypatch.setattr(fidelity, "prompt_file", lambda code: path)
    for text, expected in (('{"prompt": "Wie spät ist es?", "kind": "everyday"}\n{broken\n', ":2: not a JSON object"),
                           ('{"prompt": "Wie spät ist es?", "kind": "smalltalk"}\n', ":1: expected a non-empty `prompt`")):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(OcciError, match=expected):
            fidelity.load_prompts("de")


def test_fidelity_batches_give_the_tokens_of_one_prompt_at_a_time(tmp_path):
    """Left-padded greedy batches (occi/eval/fidelity.py) against the one-sequence loop of
    occi/chat/budget.py, on a tiny random Llama whose answers depend on every prompt token."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from occi.chat.budget import generate
    from occi.chat.models import encode_prompt, prompt_text
    from occi.eval import fidelity
    from tests.chat_models import save_tokenizer

    save_tokenizer(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    torch.manual_seed(3)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                         bos_token_id=None)).eval()
    texts = [p.text for code in ("de", "fr", "pl") for p in fidelity.load_prompts(code, 2)]
    ids = [encode_prompt(tokenizer, prompt_text(tokenizer, [{"role": "user", "content": t}])) for t in texts]
    assert len({len(i) for i in ids}) > 1  # the batch really pads
    batched = [tokenizer.decode(a, skip_special_tokens=True) for a in fidelity.generate_batch(model, tokenizer, ids, 12)]
    assert batched == [generate(model, tokenizer, i, 12).answer for i in ids]


def test_fidelity_is_evaluated_and_shown_on_the_leaderboard_and_card(models, tmp_path):
    """The German-only model: every German prompt answered in German (1.0), every French one in
    German too (0.0), from real generation and real fastText."""
    import shutil

    from occi import config as run_config
    from occi.eval import runner
    from occi.report import card

    path = tmp_path / "fidelity.yaml"
    path.write_text(yaml.safe_dump({"name": "fidelity-test", "languages": ["de", "fr"], "corpora": "demo",
                                    "eval": {"suites": ["fidelity"], "fidelity_max_new_tokens": 4,
                                                                        "fidelity_max_prompts": 4}}),
                    encoding="utf-8")
    cfg, run = run_config.load_for_run(str(path), tmp_path / "run")
    shutil.copytree(models["german"], run.hf)
    result = runner.run(cfg, run)
    assert result.complete and run.is_done("eval")
    table = json.loads(run.eval_table("hf").read_text(encoding="utf-8"))
    values = {c["language"]: (c["family"], c["value"], c["answers"]) for c in table["cells"]}
    assert values == {"de": ("fidelity", 1.0, 4), "fr": ("fidelity", 0.0, 4)}
    folder = run.eval_cell("fidelity", "hf", "fr", "fidelity")
    samples = [json.loads(line) for line in next(folder.rglob("samples_occi_fidelity_fr_*.jsonl")).read_text().splitlines()]
    assert {s["identified"] for s in samples} == {"de"} and samples[0]["answer"] == (GERMAN * 4).strip()
    assert [s["kind"] for s in samples] == ["everyday", "technical", "reasoning", "everyday"]
    scores = json.loads(next(folder.rglob("results_*.json")).read_text())["results"]["occi_fidelity_fr"]
    assert [scores["fidelity_ci95_low,none"], scores["fidelity_ci95_high,none"]] == pytest.approx([0.0, 0.489891])
    assert scores["by_kind"]["everyday"] == {"fidelity": 0.0, "answers": 2, "ci95": [0.0, pytest.approx(0.657620, abs=1e-6)]}

    card.run(cfg, run)
    text = run.card.read_text(encoding="utf-8")
    section = text.split("## Answer-language fidelity")[1].split("\n## ")[0]
    assert "| German (de) | 1.00 | 0.51–1.00 | 4 |" in section and "| French (fr) | 0.00 | 0.00–0.49 | 4 |" in section
    assert "(answer_language_fidelity.png)" in section
    assert (run.report / "answer_language_fidelity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    board = (run.report / "leaderboard.md").read_text(encoding="utf-8")
    assert "Answer-language fidelity" in board and "| occi-fidelity-test | 1.000 [0.51, 1.00] | 0.000 [0.00, 0.49] |" in board
    rows = list(csv.DictReader((run.report / "leaderboard.csv").open(encoding="utf-8")))
    assert {(r["language"], round(float(r["ci95_low"]), 4), round(float(r["ci95_high"]), 4)) for r in rows} \
        == {("de", 0.5101, 1.0), ("fr", 0.0, 0.4899)}
    summary = json.loads((run.report / "leaderboard.json").read_text(encoding="utf-8"))
    assert {(c["language"], c["benchmark"], c["value"]) for c in summary["cells"]} == {("de", "fidelity", 1.0),
                                                                                        ("fr", "fidelity", 0.0)}
    assert summary["models"][0]["own_average"] is None  # fidelity is shown, not averaged into the accuracy columns
