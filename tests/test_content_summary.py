"""The EU AI Act training-content summary from run records, the provider: block and its refusals,
and the Goldfish loss mask checked against the paper's rule."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, occi
from occi.train import goldfish

MASK64 = (1 << 64) - 1


# ------------------------------------------------------------------ Goldfish

def paper_hash(window: list[int]) -> int:
    """FNV-1a (64-bit) over the token ids, then splitmix64's finaliser, with Python integers."""
    value = 0xCBF29CE484222325
    for token in window:
        value = ((value ^ (token & MASK64)) * 0x100000001B3) & MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK64
    return value ^ (value >> 31)


def paper_rule(sequence: list[int], k: int, h: int) -> list[bool]:
    """The paper's hashed mask, one position at a time: token i is dropped from the loss when the
    hash of the h tokens before it is 0 mod k; with fewer than h tokens before it, it is kept."""
    return [i < h or paper_hash(sequence[i - h:i]) % k != 0 for i in range(len(sequence))]


@pytest.mark.parametrize("k,h", [(2, 1), (4, 13), (50, 50), (7, 3)])
def test_goldfish_mask_is_the_papers_rule(k, h):
    rng = np.random.default_rng(k * 100 + h)
    sequences = rng.integers(0, 50_000, size=(3, 300))
    mask = goldfish.keep_mask(sequences, k, h)
    for row, sequence in zip(mask, sequences):
        assert row.tolist() == paper_rule(sequence.tolist(), k, h)


def test_goldfish_drops_one_in_k_the_same_tokens_wherever_a_passage_appears():
    rng = np.random.default_rng(0)
    k, h = 4, 13
    tokens = rng.integers(0, 32_000, size=(8, 4096))
    mask = goldfish.keep_mask(tokens, k, h)
    dropped = 1 - mask[:, h:].mean()
    assert abs(dropped - 1 / k) < 0.01  # 32,600 draws: 5 standard deviations
    passage = rng.integers(0, 32_000, size=200)
    before, after = rng.integers(0, 32_000, size=(2, 57))
    first = goldfish.keep_mask(np.concatenate([before, passage]), k, h)[len(before) + h:]
    second = goldfish.keep_mask(np.concatenate([after[:11], passage, after]), k, h)[11 + h:11 + len(passage)]
    assert first.tolist() == second.tolist() and not first.all()


def test_goldfish_tokens_have_no_gradient_in_the_trainers_loss():
    from types import SimpleNamespace

    from occi.train.config import TrainConfig
    from occi.train.trainer import Trainer

    rng = np.random.default_rng(1)
    text = torch.from_numpy(rng.integers(0, 1000, size=(2, 65)))
    batch = {"tokens": text[:, :-1], "labels": text[:, 1:], "loss_mask": torch.ones(2, 64)}
    masked = goldfish.apply(batch, k=3, h=4)
    expected = torch.from_numpy(goldfish.keep_mask(text.numpy(), 3, 4)[:, 1:]).float()
    assert torch.equal(masked["loss_mask"], expected) and 0 < expected.sum() < expected.numel()
    per_token = torch.randn(2, 64, requires_grad=True)
    one_rank = SimpleNamespace(train=TrainConfig())  # no context parallelism: the loss of this rank's tokens
    loss, _ = Trainer._loss_func(one_rank, masked)(per_token)  # the trainer's own loss function
    loss.backward()
    assert torch.all(per_token.grad[expected == 0] == 0) and torch.all(per_token.grad[expected == 1] != 0)


def test_goldfish_counts_of_the_training_log_reach_the_summary_and_the_card(tmp_path):
    config, run = governed_run(tmp_path, PROVIDER)
    (run / "train").mkdir()
    step = lambda n, dropped: {"kind": "train", "step": n, "batch": n - 1, "loss": 5.0, "lr": 1e-3,  # noqa: E731
                               "tokens_per_s": 1.0, "tflops_per_device": 0.0, "goldfish_dropped": dropped,
                               "goldfish_loss_tokens": 1000}
    # step 2 logged twice (a resumed run repeats it): its last record counts
    log = [step(1, 19), step(2, 30), step(2, 21), step(3, 22)]
    (run / "train" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    assert goldfish.logged_totals(log) == {"dropped": 62, "loss_tokens": 3000, "steps": 3}
    result = occi("card", str(config), "--run-dir", str(run))
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "report" / "training-content-summary.json").read_text())
    assert summary["sections"]["3.3"]["memorisation_control"]["logged"] == {"dropped": 62, "loss_tokens": 3000, "steps": 3}
    stated = "62 of 3,000 loss tokens left out (2.07%) in 3 steps"
    assert stated in (run / "report" / "training-content-summary.md").read_text()
    assert stated in (run / "report" / "MODEL_CARD.md").read_text()


def test_goldfish_config_is_checked(tmp_path):
    config, run = governed_run(tmp_path, None)
    config.write_text(config.read_text().replace("k: 50", "k: 1"))
    result = occi("card", str(config), "--run-dir", str(run))
    assert result.returncode == 2 and "train.goldfish" in result.stderr and "k" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ the summary

PROVIDER = {"name": "Example Lab", "contact": "ai-act@example.org", "placed_on_market": "2026-11-30",
            "data_collected_until": "2026-10-01", "source_categories": {"web": "crawled", "books": "licensed"},
            "crawler": "ExampleBot 1.0, obeys robots.txt"}


def governed_run(tmp_path: Path, provider: dict | None) -> tuple[Path, Path]:
    """A run with a crawled and a licensed source and the governance records of the corpora stage."""
    for name in ("web", "books"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "de.jsonl").write_text('{"text": "x", "url": "https://a.example/1"}\n')
    config = {"name": "gov", "languages": ["de", "fr"], "model": "tiny",
              "corpora": {"sources": [{"name": "web", "kind": "jsonl", "path": "web/*.jsonl", "url_field": "url",
                                       "license": "CC-BY-4.0"},
                                      {"name": "books", "kind": "jsonl", "path": "books/*.jsonl"}]},
              "train": {"goldfish": {"k": 50, "h": 50}}}
    if provider is not None:
        config["provider"] = provider
    path = tmp_path / "gov.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    (run / "corpora").mkdir(parents=True)
    entry = lambda kept, size: {"documents_in": kept + 5, "documents_kept": kept, "bytes_in": size + 50,  # noqa: E731
                                "bytes_kept": size, "words_kept": size // 6, "drops": {}, "duplicate_rate": 0.0}
    stats = {"languages": {"de": entry(70, 7000), "fr": entry(30, 3000)},
             "sources": {"web": entry(80, 7500), "books": entry(20, 2500)},
             "totals": {**entry(100, 10000), "drops": {"url_filter/optout-2026": 4, "url_filter/csam-hashes": 2,
                                                       "decontaminate/belebele": 3, "langid/below_threshold": 6,
                                                       "dedup/exact_duplicate": 9, "gopher_quality/too_few_words": 11}},
             "errors": [],
             "pii": {"de": {"email": 12, "ip": 1, "phone": 3, "iban": 0}, "fr": {"email": 5, "ip": 0, "phone": 2, "iban": 1}},
             "decontamination": {"ngram": 13, "action": "drop", "found": {"belebele": {"de": 2, "fr": 1}},
                                 "not_checked": ["m_mmlu_fr (cannot load its data: not fetched)"]},
             "url_filter": {"lists": {"optout-2026": {"kind": "optout", "path": "lists/optout.txt", "entries": 1234},
                                      "csam-hashes": {"kind": "blocklist", "path": "lists/block.txt", "entries": 56}},
                            "dropped": {"optout-2026": {"de": 3, "fr": 1}, "csam-hashes": {"de": 2}}}}
    (run / "corpora" / "stats.json").write_text(json.dumps(stats))
    top = [{"domain": f"site{i}.example", "documents": 100 - i, "bytes": 10_000 - 100 * i} for i in range(20)]
    domains = {"method": "registered domain of url", "sources": {
        "web": {"de": {"documents": 60, "bytes": 6000, "top": top[:12]},
                "fr": {"documents": 20, "bytes": 1500, "top": top[10:]}}}}
    (run / "corpora" / "domains.json").write_text(json.dumps(domains))
    return path, run


PUBLISHED_TEMPLATE_SECTIONS = [
    # the section numbers and titles of the AI Office's template (published 24 July 2025), in order
    "1. General information", "1.1 Provider identification", "1.2 Model identification",
    "1.3 Modalities, overall training data size and other characteristics",
    "2. List of data sources", "2.1 Publicly available datasets",
    "2.2 Private non-publicly available datasets obtained from third parties",
    "2.2.1 Datasets commercially licensed by rightsholders or their representatives",
    "2.2.2 Private datasets obtained from other third parties", "2.3 Data crawled and scraped from online sources",
    "2.4 User data", "2.5 Synthetic data", "2.6 Other sources of data",
    "3. Data processing aspects",
    "3.1 Respect of reservation of rights from text and data mining exception or limitation",
    "3.2 Removal of illegal content", "3.3 Other information (optional)"]


def test_summary_reports_the_governance_records_by_the_templates_sections(tmp_path):
    config, run = governed_run(tmp_path, PROVIDER)
    result = occi("card", str(config), "--run-dir", str(run))
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "report" / "training-content-summary.json").read_text())
    text = (run / "report" / "training-content-summary.md").read_text()
    assert summary["status"] == "complete" and summary["todo"] == [] and "TO DO" not in text
    headings = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("## ") or line.startswith("###")]
    assert [h for h in headings if h != "To do"] == PUBLISHED_TEMPLATE_SECTIONS
    assert "Template for the Public Summary of Training Content" in summary["template"] and "24 July 2025" in summary["template"]
    s = summary["sections"]
    assert s["1.1"]["name"] == "Example Lab" and s["1.2"]["placed_on_market"] == "2026-11-30"
    crawled, licensed = s["2.3"]["sources"], s["2.2.1"]["sources"]
    assert [r["name"] for r in crawled] == ["web"] and [r["name"] for r in licensed] == ["books"]
    assert crawled[0]["documents"] == 80 and crawled[0]["bytes"] == 7500 and crawled[0]["share_of_bytes"] == 0.75
    assert crawled[0]["license"] == "CC-BY-4.0" and s["2.3"]["crawler"] == PROVIDER["crawler"]
    # the top 10% of the 20 domains listed, by bytes summed over languages: site10 and site11 are in both
    assert [d["domain"] for d in s["2.3"]["domains"]["top"]] == ["site10.example", "site11.example"]
    assert s["3.1"]["optout_lists"]["lists"] == [{"name": "optout-2026", "entries": 1234, "documents_dropped": 4}]
    assert s["3.2"]["blocklists"]["lists"] == [{"name": "csam-hashes", "entries": 56, "documents_dropped": 2}]
    other = s["3.3"]
    assert other["personal_data"]["found"] == {"email": 17, "ip": 1, "phone": 5, "iban": 1}
    assert other["decontamination"]["found"] == {"belebele": 3} and other["decontamination"]["documents_dropped"] == {"belebele": 3}
    assert other["decontamination"]["not_checked"] == ["m_mmlu_fr (cannot load its data: not fetched)"]
    assert "not checked: m_mmlu_fr (cannot load its data: not fetched)" in text
    assert other["deduplication"]["documents_dropped"] == {"exact_duplicate": 9}
    assert other["quality_filters"] == {"gopher_quality": {"too_few_words": 11}}
    assert other["memorisation_control"] == {"method": "Goldfish loss (Hans et al., 2024)", "k": 50, "h": 50,
                                             "logged": None}  # this run has no training log
    for shown in ("| optout-2026 | 1,234 | 4 |", "| csam-hashes | 56 | 2 |", "email 17", "k = 50", "| site10.example | 180 | 18,000 |"):
        assert shown in text, shown
    card = (run / "report" / "MODEL_CARD.md").read_text()
    assert "[training-content-summary.md](training-content-summary.md)" in card and "Status: **complete**" in card


def test_missing_records_say_not_applied_and_missing_provider_fields_are_to_do_lines(tmp_path):
    config, run = governed_run(tmp_path, None)
    stats = json.loads((run / "corpora" / "stats.json").read_text())
    for key in ("pii", "decontamination", "url_filter"):
        stats.pop(key)
    (run / "corpora" / "stats.json").write_text(json.dumps(stats))
    (run / "corpora" / "domains.json").unlink()
    assert occi("card", str(config), "--run-dir", str(run)).returncode == 0
    summary = json.loads((run / "report" / "training-content-summary.json").read_text())
    text = (run / "report" / "training-content-summary.md").read_text()
    assert summary["status"] == "incomplete"
    assert [line.split(":")[0] for line in summary["todo"]] == [
        "provider.name", "provider.contact", "provider.placed_on_market", "provider.data_collected_until",
        "provider.source_categories.web", "provider.source_categories.books"]
    assert text.count("- TO DO provider.") == 6
    assert "| Personal data (PII) | not applied |" in text and "| Benchmark decontamination | not applied |" in text
    assert "Not applied: no opt-out list" in text and "Not applied: no block list" in text
    card = (run / "report" / "MODEL_CARD.md").read_text()
    assert "Status: **incomplete (6 to-do line(s)" in card
    refused = occi("card", str(config), "--run-dir", str(run), "--push", "occi/x", "--dry-run")
    assert refused.returncode == 2 and "6 to-do line(s)" in refused.stderr and "--allow-incomplete" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    allowed = occi("card", str(config), "--run-dir", str(run), "--push", "occi/x", "--dry-run", "--allow-incomplete")
    assert allowed.returncode == 2 and "no exported model" in allowed.stderr  # past the summary, on to the model


@pytest.mark.parametrize("provider,complaint", [
    ({"placed_on_market": "30.11.2026"}, "placed_on_market: '30.11.2026' is not a date"),
    ({"source_categories": {"nosuch": "public"}}, "provider.source_categories: 'nosuch' is not a source"),
    ({"source_categories": {"web": "borrowed"}}, "source_categories.web: 'borrowed' is not one of"),
])
def test_bad_provider_settings_are_one_clear_line(tmp_path, provider, complaint):
    config, run = governed_run(tmp_path, provider)
    result = occi("card", str(config), "--run-dir", str(run))
    assert result.returncode == 2 and complaint in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unquoted_yaml_date_is_read_as_that_date(tmp_path):
    config, run = governed_run(tmp_path, None)
    config.write_text(config.read_text() + "provider:\n  placed_on_market: 2026-11-30\n")
    assert occi("card", str(config), "--run-dir", str(run)).returncode == 0
    summary = json.loads((run / "report" / "training-content-summary.json").read_text())
    assert summary["sections"]["1.2"]["placed_on_market"] == "2026-11-30"


def test_continued_pretraining_sft_and_distillation_are_in_the_summary(tmp_path):
    (tmp_path / "chat").mkdir()
    (tmp_path / "chat" / "a.jsonl").write_text('{"messages": []}\n')
    config = {"name": "cpt", "languages": ["de"], "model": {"base": "example-org/tiny-base", "revision": "r1"},
              "tokenizer": "base", "corpora": {"sources": [{"name": "web", "kind": "hub", "dataset": "example-org/web"}]},
              "sft": {"sources": [{"name": "chat", "kind": "hub", "dataset": "example-org/chat", "license": "CC-BY-4.0"},
                                  {"name": "distilled", "kind": "jsonl", "path": "run/distill/de.jsonl"}]},
              "dpo": {"sources": [{"name": "prefs", "kind": "jsonl", "path": "chat/*.jsonl", "license": "MIT"}]},
              "distill": {"teacher": "example-org/teacher", "revision": "abc123", "prompts": {"de": "prompts/de.jsonl"}},
              "provider": {**{k: PROVIDER[k] for k in ("name", "contact", "placed_on_market")},
                           "source_categories": {"chat": "private", "distilled": "synthetic", "prefs": "other"}}}
    path = tmp_path / "cpt.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    for folder in ("base", "sft/data", "dpo/data", "distill", "corpora"):
        (run / folder).mkdir(parents=True)
    (run / "base" / "source.json").write_text(json.dumps({
        "base": "example-org/tiny-base", "revision": "r1", "folder": str(tmp_path / "nowhere"), "architecture": "llama",
        "parameters": 1000, "tensor_parallel": 1, "pipeline_parallel": 1}))
    (run / "fetch.json").write_text(json.dumps({"items": {
        "web": {"id": "example-org/web", "revision": "f00d", "fetched_at": "2026-09-14T10:00:00"},
        "chat": {"id": "example-org/chat", "revision": "c4a7", "fetched_at": "2026-09-01T10:00:00"}}}))
    source = lambda rows_in, kept, tokens, drops: {  # noqa: E731  the entries of <stage>/data/stats.json
        "rows_in": rows_in, "kept": kept, "truncated": 0, "tokens": tokens, "assistant_tokens": tokens // 2,
        "tokens_per_epoch": 2 * tokens, "drops": drops}
    sft_stats = {"epochs": 3, "totals": source(12, 9, 500, {"language/answer_language": 1, "duplicate/exact": 2}),
                 "sources": {"chat": source(8, 5, 300, {"duplicate/exact": 2, "language/answer_language": 1}),
                             "distilled": source(4, 4, 200, {})}}
    dpo_stats = {"epochs": 2, "totals": source(7, 6, 900, {"identical/chosen_is_rejected": 1}),
                 "sources": {"prefs": source(7, 6, 900, {"identical/chosen_is_rejected": 1})}}
    (run / "sft" / "data" / "stats.json").write_text(json.dumps(sft_stats))
    (run / "dpo" / "data" / "stats.json").write_text(json.dumps(dpo_stats))
    logs = {"sft": [(1, 40), (2, 44), (2, 46), (3, 38)], "dpo": [(1, 120), (2, 130)]}  # step 2 of sft logged twice (resumed)
    for stage, records in logs.items():
        (run / stage / "log.jsonl").write_text("".join(json.dumps({"kind": "train", "step": step, "tokens": tokens}) + "\n"
                                                       for step, tokens in records))
    (run / "distill" / "stats.json").write_text(json.dumps({"teacher": "example-org/teacher", "revision": "abc123",
                                                             "languages": {"de": {"rows": 4, "prompts": 5}}}))
    result = occi("card", str(path), "--run-dir", str(run))
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "report" / "training-content-summary.json").read_text())
    s = summary["sections"]
    assert summary["todo"] == ["provider.base_model_summary: where the training-content summary of the base model "
                               "example-org/tiny-base is"]
    assert s["1.2"]["training"] == "continued pretraining of a base model"
    assert s["1.2"]["dependencies"][0] | {"summary": None} == {"base_model": "example-org/tiny-base", "revision": "r1",
                                                                "summary": None}
    assert s["1.3"]["latest_collection"] == {"date": "2026-09-14", "from": "fetch.json"}
    assert s["1.3"]["training_data_size"]["text"] | {"range": None} == {
        "tokens": 500 + 900, "pretraining_tokens": 0, "sft_tokens": 500, "dpo_tokens": 900, "range": None}
    assert s["1.3"]["tuning_trained"] == {"sft": {"tokens": 40 + 46 + 38, "steps": 3}, "dpo": {"tokens": 250, "steps": 2}}
    assert any("preference pairs" in kind for kind in s["1.3"]["content_types"])
    (public,) = s["2.1"]["sources"]
    assert public["name"] == "web" and public["link"] == "https://huggingface.co/datasets/example-org/web"
    assert public["revision"] == "f00d"
    (chat,) = s["2.2.2"]["sources"]
    assert chat == {"name": "chat", "used_for": "supervised fine-tuning", "kind": "hub", "link": "example-org/chat",
                    "revision": "c4a7", "license": "CC-BY-4.0", "rows_in": 8, "conversations": 5,
                    "dropped": {"duplicate/exact": 2, "language/answer_language": 1}, "tokens": 300,
                    "tokens_planned": 600 * 3}
    assert [(r["name"], r["conversations"], r["rows_in"], r["license"]) for r in s["2.5"]["sources"]] == [
        ("distilled", 4, 4, "not stated")]
    (prefs,) = s["2.6"]["sources"]
    assert prefs == {"name": "prefs", "used_for": "preference tuning", "kind": "jsonl", "link": "chat/*.jsonl",
                     "revision": None, "license": "MIT", "rows_in": 7, "pairs": 6,
                     "dropped": {"identical/chosen_is_rejected": 1}, "tokens": 900, "tokens_planned": 1800 * 2}
    assert s["2.5"]["distillation"] == {"teacher": "example-org/teacher", "revision": "abc123",
                                        "prompts": {"de": ["prompts/de.jsonl"]}, "rows": {"de": 4}, "prompt_rows": {"de": 5}}
    assert s["3.3"]["sft_checks"] == {"conversations_kept": 9, "dropped": {"duplicate/exact": 2, "language/answer_language": 1}}
    assert s["3.3"]["dpo_checks"] == {"pairs_kept": 6, "dropped": {"identical/chosen_is_rejected": 1}}
    text = (run / "report" / "training-content-summary.md").read_text()
    assert "teacher `example-org/teacher` (abc123)" in text and "prompts read: de 5; answers kept: de 4" in text
    assert "| prefs | preference tuning | `chat/*.jsonl` | n/a | MIT | 7 rows read, 6 pairs kept, 900 tokens (3,600 over its " \
           "epochs); dropped: identical/chosen_is_rejected 1 |" in text
    assert "Tokens trained (supervised fine-tuning) | 124 in 3 steps" in text and "Preference data checks" in text
