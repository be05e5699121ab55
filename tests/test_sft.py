"""Supervised fine-tuning: chat data checks, the chat template, masking, packing, and a tiny chat
model that memorises its answers, all with the real parts (megatron-core SFT through torchrun on
CPU, transformers loading the export, fastText language ID).

One module fixture builds a 3-language run (corpora, tokenizer, a few pretraining steps), fine-tunes
it on six conversations (two per language, from the bundled chat-demo set) plus a source of broken
rows, and exports it; the tests read that run, and two of them fine-tune copies of it again.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, occi
from occi.rundir import RunDir

# the module fixture (corpora, tokenizer, 4 pretraining steps, 160 SFT steps, export) took more than
# the default 600 s on the shared 2-core machine it was written on (load average above 10)
pytestmark = pytest.mark.timeout(1800)

LANGS = ["en", "de", "fr"]
CHAT_DEMO = REPO / "corpora" / "chat-demo"
SEQ = 256  # the demo tokenizer at 600 pieces makes ~90-token conversations: two fit into one sequence
SFT = {"epochs": 80, "micro_batch_size": 2, "global_batch_size": 2, "lr": 0.006, "min_lr": 0.001,
       "save_interval": 1000}


def chat_rows() -> list[dict]:
    """Two conversations per language: the system-prompt one and the greeting."""
    rows = []
    for code in LANGS:
        lines = [json.loads(line) for line in (CHAT_DEMO / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()]
        rows += [lines[21], lines[20]]
    return rows


def broken_rows(good: list[dict]) -> list:
    """One row per reason a row can be dropped (the raw strings are lines that are not JSON)."""
    user = lambda text: {"role": "user", "content": text}  # noqa: E731
    bot = lambda text: {"role": "assistant", "content": text}  # noqa: E731
    long_answer = " ".join(["The weather today is sunny and warm in the whole country."] * 30)
    return [
        "{not json",
        {"language": "en", "messages": [{"content": "a turn without a role"}, bot("An answer without a question.")]},
        {"language": "en", "messages": [bot("I speak first, which is not how a chat starts."), user("Hello there, how are you?")]},
        {"language": "en", "messages": [user("   "), bot("An answer to an empty question.")]},
        {"language": "en", "messages": [{"role": "narrator", "content": "Once upon a time"}, bot("Yes?")]},
        {"language": "en", "messages": []},
        {"language": "en", "messages": [user("Is anybody there to answer me?")]},
        {"language": "en", "messages": [user("Hello"), {"role": "system", "content": "Be brief."}, bot("Hi")]},
        {"messages": [user("Which language is this written in?"), bot("It has no language field.")]},
        {"language": "sv", "messages": [user("Vilket språk talar vi just nu?"), bot("Vi talar svenska just nu.")]},
        {"language": "de", "messages": [user("Welche Sprache sprechen wir gerade hier?"),
                                        bot("We are speaking English right now, my friend.")]},
        {"language": "en", "messages": [user("Tell me about the weather today in detail."), bot(long_answer)]},
        good[0],  # the first English conversation again: an exact duplicate of its prompt
        {**good[0], "messages": [{**good[0]["messages"][0]},
                                 {**good[0]["messages"][1], "content": good[0]["messages"][1]["content"] + "??"},
                                 good[0]["messages"][2]]},
    ]


def write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")


def write_config(folder: Path, name: str = "run.yaml", parallel: dict | None = None, **sft) -> Path:
    """The test run's config; `parallel`: its tensor/pipeline/data-parallel sizes (train: section)."""
    config = {"name": "t", "languages": LANGS, "corpora": {"recipe": "demo", "workers": 1},
              "tokenizer": {"recipe": "demo", "vocab_size": 600}, "model": {"recipe": "tiny", "seq_length": SEQ},
              "train": {"micro_batch_size": 2, "global_batch_size": 4, "steps": 4, "warmup_steps": 1,
                        "save_interval": 4, "eval_interval": 4, "eval_samples": 2, **(parallel or {})},
              "sft": {"sources": [{"name": "chat", "kind": "jsonl", "path": "chat.jsonl"},
                                  {"name": "broken", "kind": "jsonl", "path": "broken.jsonl"}], **SFT, **sft}}
    path = folder / name
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory) -> tuple[Path, Path]:
    """(config, run directory) of a run pretrained for 4 steps, fine-tuned and exported."""
    folder = tmp_path_factory.mktemp("sft")
    good = chat_rows()
    write_jsonl(folder / "chat.jsonl", good)
    write_jsonl(folder / "broken.jsonl", broken_rows(good))
    config = write_config(folder)
    run_dir = folder / "run"
    for stage in (["corpora", "build"], ["tokenizer", "train"], ["data", "prepare"], ["train"], ["sft"], ["export"]):
        result = occi(*stage, str(config), "--run-dir", str(run_dir), timeout=900)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return config, run_dir


def sft_log(run_dir: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (run_dir / "sft" / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if r["kind"] == "train"}


def test_broken_rows_are_counted_under_their_own_reasons_never_fatal(chat_run):
    _, run_dir = chat_run
    stats = json.loads(RunDir(run_dir).sft_stats.read_text())
    broken = stats["sources"]["broken"]["drops"]
    assert broken == {
        "read/malformed_json": 1, "malformed/missing_role": 1, "malformed/assistant_first": 1,
        "malformed/empty_content": 1, "malformed/unknown_role": 1, "malformed/no_messages": 1,
        "malformed/no_assistant": 1, "malformed/system_not_first": 1, "language/undeclared": 1,
        "language/not_a_run_language": 1, "language/answer_language": 1, "too_long": 1,
        "duplicate/exact": 1, "duplicate/near": 1}, broken
    assert stats["sources"]["chat"]["kept"] == 6 and stats["sources"]["chat"]["drops"] == {}
    assert stats["totals"]["kept"] == 6 and stats["template"] == "occi"
    assert stats["sources"]["chat"]["provenance"] == {"occi": 6}
    assert (RunDir(run_dir).sft_data / "kept_dropped.png").stat().st_size > 1000


def test_training_ids_are_apply_chat_template_and_the_mask_is_the_answers(chat_run):
    """What training used, conversation by conversation, against transformers on the exported model."""
    from transformers import AutoTokenizer

    from occi.sft.packing import Conversations

    _, run_dir = chat_run
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "hf"))
    data = Conversations.load(RunDir(run_dir).sft_data / "conversations.npz")
    rows = chat_rows()  # kept in reading order: the chat source comes first
    assert len(data) == len(rows)
    for index, row in enumerate(rows):
        ids = data.ids[data.offsets[index]:data.offsets[index + 1]]
        mask = data.assistant[data.offsets[index]:data.offsets[index + 1]].astype(bool)
        expected = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]
        assert ids.tolist() == list(expected)
        answers = "".join(m["content"] + tokenizer.eos_token for m in row["messages"] if m["role"] == "assistant")
        assert tokenizer.decode(ids[mask].tolist()) == answers
    assert (run_dir / "hf" / "chat_template.jinja").is_file()
    assert json.loads((run_dir / "hf" / "generation_config.json").read_text())["eos_token_id"] == tokenizer.eos_token_id


def test_loss_tokens_per_step_are_the_assistant_tokens(chat_run):
    from occi.sft.packing import Conversations

    _, run_dir = chat_run
    data = Conversations.load(RunDir(run_dir).sft_data / "conversations.npz")
    per_epoch = sum(int(data.assistant[data.offsets[i] + 1:data.offsets[i + 1]].sum()) for i in range(len(data)))
    log = sft_log(run_dir)
    assert len(log) == max(log) and max(log) % SFT["epochs"] == 0
    steps_per_epoch = max(log) // SFT["epochs"]
    for epoch in (0, SFT["epochs"] - 1):
        steps = range(epoch * steps_per_epoch + 1, (epoch + 1) * steps_per_epoch + 1)
        assert sum(log[s]["loss_tokens"] for s in steps) == per_epoch
    assert log[max(log)]["loss"] < 0.2 < log[1]["loss"]


def test_the_chat_model_answers_what_it_was_taught_in_three_languages(chat_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, run_dir = chat_run
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "hf"))
    model = AutoModelForCausalLM.from_pretrained(str(run_dir / "hf"))
    for row in chat_rows()[::2]:  # the system-prompt conversation of each language
        prompt = tokenizer.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, return_dict=True,
                                               return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**prompt, max_new_tokens=30, do_sample=False)
        answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
        assert answer == row["messages"][-1]["content"], (row["language"], answer)


def test_loss_masking_is_exact_through_megatron(chat_run):
    """Gradients reach the logits of assistant positions only: the logits of prompt, system and
    padding positions get exactly zero gradient, through the SFT trainer's own loss function."""
    import types

    import torch

    from occi import config as config_module
    from occi.sft import packing
    from occi.sft.trainer import SFTTrainer
    from occi.train.export import single_process_model

    config, run_dir = chat_run
    cfg = config_module.load(str(run_dir / "config.yaml"))
    data = packing.Conversations.load(RunDir(run_dir).sft_data / "conversations.npz")
    shortest = sorted(range(len(data)), key=data.positions)
    sequences = [shortest[:2], [shortest[2]], []]  # two packed, one alone, one empty (padding only)
    batch = packing.batch(data, sequences, SEQ, pad_id=0)
    trainer = types.SimpleNamespace(train=types.SimpleNamespace(global_batch_size=3, micro_batch_size=3),
                                    _loss_tokens=packing.loss_tokens(data, sequences))
    with single_process_model(cfg, run_dir, root=RunDir(run_dir).sft_checkpoints) as (model, _):
        captured = {}

        def keep(module, inputs, output):
            output[0].retain_grad()
            captured["logits"] = output[0]

        model.output_layer.register_forward_hook(keep)
        per_token = model(batch["tokens"], batch["position_ids"], batch["attention_mask"], labels=batch["labels"])
        loss, report = SFTTrainer._loss_func(trainer, batch)(per_token)
        loss.backward()
    grad = captured["logits"].grad.transpose(0, 1).abs().sum(-1)  # [s, b, v] -> [b, s]
    mask = batch["loss_mask"].bool()
    assert int(mask.sum()) == trainer._loss_tokens
    assert torch.all(grad[~mask] == 0)
    assert torch.all(grad[mask] > 0)
    assert torch.isclose(report["sum"] / report["count"], (per_token * batch["loss_mask"]).sum() / mask.sum())


def test_packed_and_padded_training_give_the_same_losses(chat_run, tmp_path):
    """Same conversations, one step covering all of them: packed into two sequences or one per
    sequence (padded), the loss over assistant tokens is the same, and so is the next step's."""
    from occi.sft.packing import Conversations

    config, run_dir = chat_run
    data = Conversations.load(RunDir(run_dir).sft_data / "conversations.npz")
    per_epoch = sum(int(data.assistant[data.offsets[i] + 1:data.offsets[i + 1]].sum()) for i in range(len(data)))
    losses = {}
    for packing in (True, False):
        copy = tmp_path / f"packing-{packing}"
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("sft", "hf", "config.yaml"))
        shutil.copy(config.parent / "chat.jsonl", tmp_path / "chat.jsonl")
        shutil.copy(config.parent / "broken.jsonl", tmp_path / "broken.jsonl")
        cfg = write_config(tmp_path, f"p{packing}.yaml", packing=packing, epochs=2, micro_batch_size=2,
                           global_batch_size=6)
        result = occi("sft", str(cfg), "--run-dir", str(copy), timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        losses[packing] = [sft_log(copy)[step]["loss"] for step in (1, 2)]
        assert sft_log(copy)[1]["loss_tokens"] == per_epoch  # the one step of an epoch holds every conversation
    assert losses[True] == pytest.approx(losses[False], rel=1e-4), losses


def test_sft_at_tp2_pp2_dp2_matches_tp1_and_the_tp2_checkpoint_exports_exactly(chat_run, tmp_path):
    """The fixture's fine-tuning (TP=1, one micro batch of two sequences per step) again for its
    first three steps at TP=2, at PP=2 (two micro batches of one sequence through the pipeline
    schedule) and at DP=2 (one sequence per rank): the same losses, gradient norms and loss-token
    counts (what the loss masks of all ranks held) step by step. The TP=2 SFT checkpoint then exports to
    a transformers model with megatron's logits and the chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from occi import config as config_module
    from occi.sft.packing import Conversations
    from occi.train.export import megatron_logits

    config, run_dir = chat_run
    for name in ("chat.jsonl", "broken.jsonl"):
        shutil.copy(config.parent / name, tmp_path / name)
    reference = sft_log(run_dir)
    layouts = {"tp2": ({"tensor_parallel": 2}, {}), "pp2": ({"pipeline_parallel": 2}, {"micro_batch_size": 1}),
               "dp2": ({"data_parallel": 2}, {"micro_batch_size": 1})}
    copies = {}
    for name, (parallel, sft) in layouts.items():
        copy = tmp_path / name
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("sft", "hf", "config.yaml"))
        cfg = write_config(tmp_path, f"{name}.yaml", parallel=parallel, stop_after_steps=3, **sft)
        result = occi("sft", str(cfg), "--run-dir", str(copy), timeout=900)
        assert result.returncode == 0 and "stopped early" in result.stdout, result.stderr[-3000:]
        log = sft_log(copy)
        assert sorted(log) == [1, 2, 3]
        assert [log[s]["loss_tokens"] for s in log] == [reference[s]["loss_tokens"] for s in log], name
        assert [log[s]["loss"] for s in log] == pytest.approx([reference[s]["loss"] for s in log], rel=1e-4), name
        # Adam hides a uniform error in the gradients' scale from the losses; their norm shows it
        assert [log[s]["grad_norm"] for s in log] == pytest.approx([reference[s]["grad_norm"] for s in log],
                                                                   rel=1e-4), name
        copies[name] = (cfg, copy)

    cfg, copy = copies["tp2"]
    result = occi("export", str(cfg), "--run-dir", str(copy))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((copy / "hf" / "occi_export.json").read_text())["iteration"] == 3
    tokens = torch.randint(0, 500, (2, 40), generator=torch.Generator().manual_seed(0))
    expected = megatron_logits(config_module.load(str(cfg)), copy, tokens, root=RunDir(copy).sft_checkpoints)
    model = AutoModelForCausalLM.from_pretrained(copy / "hf")
    with torch.no_grad():
        actual = model(tokens).logits
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    tokenizer = AutoTokenizer.from_pretrained(str(copy / "hf"))
    assert (copy / "hf" / "chat_template.jinja").is_file()
    data = Conversations.load(RunDir(copy).sft_data / "conversations.npz")
    row = chat_rows()[0]
    expected_ids = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]
    assert data.ids[data.offsets[0]:data.offsets[1]].tolist() == list(expected_ids)


def test_a_stopped_sft_resumes_where_it_stopped(chat_run, tmp_path):
    """Stopped after 3 steps (with a checkpoint), then run again: the remaining steps have the
    losses of the uninterrupted fine-tuning."""
    config, run_dir = chat_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("sft", "hf", "config.yaml"))
    for name in ("chat.jsonl", "broken.jsonl"):
        shutil.copy(config.parent / name, tmp_path / name)
    first = occi("sft", str(write_config(tmp_path, "a.yaml", epochs=2, stop_after_steps=3)), "--run-dir", str(copy))
    assert first.returncode == 0 and "stopped early" in first.stdout, first.stderr[-2000:]
    second = occi("sft", str(write_config(tmp_path, "a.yaml", epochs=2)), "--run-dir", str(copy), "--reconfigure")
    assert second.returncode == 0, second.stderr[-2000:]
    reference = sft_log(run_dir)
    resumed = sft_log(copy)
    assert max(resumed) == 2 * max(reference) // SFT["epochs"]
    # the same data order and weights; the schedule differs (2 epochs, not 80): compare with a rerun
    assert "resumed SFT from step 3" in (copy / "sft" / "log.jsonl").read_text()
    assert all(resumed[s]["loss_tokens"] == reference[s]["loss_tokens"] for s in resumed)


def test_sft_needs_a_checkpoint_and_its_section(tmp_path):
    config = write_config(tmp_path)
    result = occi("sft", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "run `occi train` first" in result.stderr
    plain = yaml.safe_load(config.read_text())
    plain["sft"]["global_batch_size"] = 5
    config.write_text(yaml.safe_dump(plain))
    bad = occi("sft", str(config), "--run-dir", str(tmp_path / "run2"))
    assert bad.returncode == 2 and "sft: global_batch_size 5 is not a multiple of micro_batch_size 2" in bad.stderr


def test_sft_recipes_load_and_render_for_slurm():
    """The SFT recipes load and have the sft stage; it renders as a chained training job that runs
    `occi sft` (the train template, with the sft folder's completion marker). The whole plan of
    the cluster recipes needs the hub (corpora shard counts), so there only the sft job is rendered."""
    from occi import config as config_module
    from occi.pipeline import stages_of
    from occi.slurm.render import Step, render
    from occi.slurm.submit import load_profile, nodes_for, plan

    assert "sft" not in [stage.name for stage in stages_of(config_module.load("demo"))]
    run_dir = Path("/scratch/project/occi/runs/sft")
    profile, _ = load_profile("leonardo-booster")
    demo = config_module.load("demo-sft")
    steps = {step.name: step for step in plan(demo, run_dir, profile, chain=2)}
    assert steps["sft"].kind == "train" and steps["sft"].after == ["train"] and steps["export"].after == ["sft"]
    for name in ("demo-sft", "sft-llama-3.1-8b-eu", "sft-mistral-7b-eu"):
        cfg = config_module.load(name)
        assert [stage.name for stage in stages_of(cfg)][-4:] == ["sft", "export", "eval", "report"]
        step = Step("sft", "sft", "train", array=2, throttle=1, after=["train"])
        script = render(step, cfg, profile, run_dir, Path(cfg.source_file), nodes_for(cfg, profile), run_dir)
        assert f"-m occi.cli sft {cfg.source_file} --run-dir {run_dir} &" in script
        assert f"if [ -e {run_dir}/sft/_DONE ]" in script and "#SBATCH --array=0-1%1" in script
    train = render(steps["train"], demo, profile, run_dir, Path(demo.source_file), 1, run_dir)
    assert f"-m occi.cli train {demo.source_file}" in train and f"{run_dir}/train/_DONE" in train


def test_the_bundled_chat_set_covers_the_demo_languages_and_language_id_keeps_it():
    """corpora/chat-demo: 24 conversations in each of demo-sft's 28 languages, each row parsed
    and its prompt and answer identified as its declared language by the check demo-sft runs."""
    from occi import config as config_module
    from occi.corpora.langid import LanguageIdentifier
    from occi.sft import data
    from occi.sft.config import ChatSourceConfig

    cfg = config_module.load("demo-sft")
    langid = LanguageIdentifier.from_config(cfg.corpora.langid, cfg.languages, cfg.corpora.base_dir)
    source = ChatSourceConfig(name="chat-demo", kind="jsonl", path="x")
    assert sorted(p.stem for p in CHAT_DEMO.glob("*.jsonl")) == sorted(cfg.languages)
    problems = []
    for code in cfg.languages:
        rows = [json.loads(line) for line in (CHAT_DEMO / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert len(rows) == 24 and {row["language"] for row in rows} == {code}
        for number, row in enumerate(rows):
            messages, language = data.parse(row, source, cfg.languages)
            problem = data._language_problem(langid, messages, language, cfg.sft.checks.min_langid_chars)
            if problem:
                problems.append((code, number, problem))
    assert problems == []


def test_string_rows_have_their_own_reason_and_only_kept_rows_reach_the_card(tmp_path):
    """A row that is a JSON string is malformed/not_an_object (its text is never a reason); provenance
    counts the kept conversations, so a duplicate's teacher does not reach the card; names are escaped."""
    from hf_bases import save_tokenizer
    from occi import config as config_module
    from occi.report.sft_section import sft_section
    from occi.sft import data, template

    save_tokenizer(tmp_path / "base")
    template.write_chat_tokenizer(tmp_path / "base", tmp_path / "chat", "occi")
    good = chat_rows()[0]
    write_jsonl(tmp_path / "chat.jsonl", ['"<script>alert(1)</script>"', '"too_long"', '["a", "list"]',
                                          {**good, "provenance": {"teacher": "org/<b>kind</b> *x* [y](z)"}},
                                          {**good, "provenance": {"teacher": "<script>dup()</script>"}}])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"name": "t", "languages": ["en"], "corpora": {"recipe": "demo"}, "sft": {
        "sources": [{"name": "chat_<i>src</i>", "kind": "jsonl", "path": "chat.jsonl"}],
        "checks": {"language_id": False}}}), encoding="utf-8")
    cfg = config_module.load(str(config))
    stats = data.prepare(cfg.sft, ["en"], template.load_tokenizer(tmp_path / "chat"), SEQ, 0, None, tmp_path / "data")
    source = stats["sources"]["chat_<i>src</i>"]
    assert source["drops"] == {"duplicate/exact": 1, "malformed/not_an_object": 3}, source["drops"]
    assert source["kept"] == 1 and source["provenance"] == {"org/<b>kind</b> *x* [y](z)": 1}
    run = RunDir(tmp_path / "run")
    run.sft_data.mkdir(parents=True)
    run.sft_stats.write_text(json.dumps({**stats, "template": "occi"}), encoding="utf-8")
    run.hf.mkdir(parents=True)
    (run.hf / "occi_export.json").write_text('{"sft": true}', encoding="utf-8")
    card = "\n".join(sft_section(cfg, run, tmp_path))
    assert "<script>" not in card and "dup()" not in card and "<b>" not in card and "<i>" not in card
    assert "| chat\\_&lt;i&gt;src&lt;/i&gt; | jsonl | 1 | 1 | org/&lt;b&gt;kind&lt;/b&gt; \\*x\\* \\[y\\](z) (1 rows) |" in card
    assert "| en | 2 | 1 | " in card and "| duplicate/exact 1 |" in card
    assert "| ? | 3 | 0 | 0 | 0 | malformed/not_an_object 3 |" in card  # no language: not even an object


def test_with_both_duplicate_checks_off_every_conversation_is_kept(tmp_path):
    from hf_bases import save_tokenizer
    from occi import config as config_module
    from occi.sft import data, template

    save_tokenizer(tmp_path / "base")
    template.write_chat_tokenizer(tmp_path / "base", tmp_path / "chat", "occi")
    good = chat_rows()[0]
    write_jsonl(tmp_path / "chat.jsonl", [good, good, chat_rows()[1]])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"name": "t", "languages": ["en", "de", "fr"], "corpora": {"recipe": "demo"},
                                      "sft": {"sources": [{"name": "chat", "kind": "jsonl", "path": "chat.jsonl"}],
                                              "checks": {"language_id": False,
                                                         "dedup": {"exact": False, "near": False}}}}),
                      encoding="utf-8")
    cfg = config_module.load(str(config))
    stats = data.prepare(cfg.sft, cfg.languages, template.load_tokenizer(tmp_path / "chat"), SEQ, 0, None,
                         tmp_path / "data")
    assert stats["sources"]["chat"]["kept"] == 3 and not stats["sources"]["chat"]["drops"], stats["sources"]


def test_too_long_conversations_are_cut_at_a_turn_boundary(chat_run):
    from occi.sft import data, template

    _, run_dir = chat_run
    tokenizer = template.load_tokenizer(RunDir(run_dir).sft_tokenizer)
    lines = (CHAT_DEMO / "en.jsonl").read_text(encoding="utf-8").splitlines()
    messages = json.loads(lines[23])["messages"]  # greeting, answer, thanks, answer
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    whole = template.encode(tokenizer, messages)
    cut = data.truncated(tokenizer, messages, len(whole.ids) - 1)
    assert cut.ids == template.encode(tokenizer, messages[:2]).ids and sum(cut.assistant) > 0
    assert data.truncated(tokenizer, messages, 5) is None
