"""The tokenizer stage: sampling, SentencePiece training, the transformers files, every metric."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import occi, sample_docs, write_config, write_jsonl
from occi.errors import OcciError
from occi.tokenizer import report
from occi.tokenizer.models import load
from occi.tokenizer.sampling import language_shares, sample_lines

LANGS = ["fr", "fi", "el", "sv"] if Path(__file__).parent.parent.joinpath("corpora/demo/el.jsonl").exists() else ["fr", "fi", "sv", "et"]
MULTILINGUAL = [
    "Le marché du samedi ouvre à 7 h 30 ; les fraises coûtent 4,50 € le kilo.",
    "Kesämökillä   sataa,  mutta  sauna  lämpenee 🙂 ja kello on 18.45!",
    "Ελληνικά: η θάλασσα είναι ήρεμη σήμερα, 12 βαθμοί.",
    "  Två mellanslag först, tabb\there, och slut  ",
    "Emoji 🚀🇪🇺 and digits 0123456789, punctuation: «¿¡…—»",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tok")
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump({"name": "tok", "languages": LANGS, "corpora": {"recipe": "demo", "workers": 1},
                                      "tokenizer": {"recipe": "demo", "vocab_size": 800, "special_tokens": ["<|user|>"],
                                                    "reserved_tokens": 2}}))
    run_dir = folder / "run"
    assert occi("corpora", "build", str(config), "--run-dir", str(run_dir)).returncode == 0
    result = occi("tokenizer", "train", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "fertility" in result.stdout
    return run_dir


def test_training_writes_sentencepiece_and_transformers_files(trained):
    folder = trained / "tokenizer"
    for name in ("tokenizer.model", "tokenizer.vocab", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "sampling.json", "report.json", "report.md", "fertility.png", "_DONE"):
        assert (folder / name).exists(), name
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    assert [sp.id_to_piece(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    assert sp.piece_to_id("<|user|>") == 4 and sp.piece_to_id("<reserved_1>") == 6
    assert sp.get_piece_size() <= 800


def test_transformers_gives_the_same_ids_and_round_trips(trained):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    folder = trained / "tokenizer"
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    hf = AutoTokenizer.from_pretrained(folder)
    assert (hf.unk_token_id, hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (0, 1, 2, 3)
    for text in MULTILINGUAL:
        ids = sp.encode(text)
        assert hf(text, add_special_tokens=False)["input_ids"] == ids
        assert sp.decode(ids) == text
        assert hf.decode(ids) == text
    assert hf.encode("<|user|> bonjour", add_special_tokens=False)[0] == 4


def test_sampling_follows_the_temperature(trained):
    shares = json.loads((trained / "tokenizer" / "sampling.json").read_text())["languages"]
    available = {code: entry["available_chars"] for code, entry in shares.items()}
    expected = language_shares(available, 0.3)
    for code, entry in shares.items():
        assert entry["target_share"] == pytest.approx(expected[code], abs=1e-6)
        assert entry["actual_share"] == pytest.approx(expected[code], abs=0.02)


def test_sampling_shares_for_alpha_0_and_1():
    lines = {"a": ["x" * 10] * 90, "b": ["y" * 10] * 10}
    assert language_shares({"a": 900, "b": 100}, 1.0) == pytest.approx({"a": 0.9, "b": 0.1})
    chosen, record = sample_lines(lines, 0.0, 2000, seed=1)
    assert record["a"]["actual_share"] == pytest.approx(0.5, abs=0.01)
    assert record["b"]["repeats"] == pytest.approx(10.0, abs=0.2)  # the small language is repeated


def test_metrics_against_hand_computed_values(tmp_path):
    import sentencepiece as spm

    # a tiny word-level model: every word of the training text is one piece
    text = "\n".join(["ab ab ab cd cd ef"] * 50)
    (tmp_path / "train.txt").write_text(text)
    spm.SentencePieceTrainer.train(input=str(tmp_path / "train.txt"), model_prefix=str(tmp_path / "m"), vocab_size=270,
                                   model_type="word", byte_fallback=True, minloglevel=2, hard_vocab_limit=False)
    tokenizer = load(str(tmp_path / "m.model"))
    m = report.measure(tokenizer, "ab cd zz\nef\n\n")
    assert (m.lines, m.words, m.chars) == (2, 4, 10)
    # ab, cd, ef: one token each; "zz" is unknown: the word piece is missing, so "▁zz" falls back to
    # bytes: ▁ (3 bytes) + z + z = 5 byte tokens
    assert m.tokens == 3 + 5 and m.byte_tokens == 5
    values = m.as_dict(has_byte_fallback=True)
    assert values["fertility"] == pytest.approx(8 / 4)
    assert values["chars_per_token"] == pytest.approx(10 / 8)
    assert values["bytes_per_token"] == pytest.approx(10 / 8)
    assert values["continued_word_ratio"] == pytest.approx(1 / 4)
    assert values["byte_fallback_rate"] == pytest.approx(5 / 8)


def test_parity_against_english_for_parallel_texts(tmp_path):
    (tmp_path / "en.txt").write_text("one two three four\n")
    (tmp_path / "fr.txt").write_text("un deux trois quatre cinq six sept huit\n")
    result = report.evaluate([load("tekken-131k")], report.read_texts([f"en={tmp_path / 'en.txt'}", f"fr={tmp_path / 'fr.txt'}"]), True)
    entry = result["tokenizers"]["tekken-131k"]["languages"]
    assert entry["en"]["parity"] == 1.0
    assert entry["fr"]["parity"] == pytest.approx(entry["fr"]["tokens"] / entry["en"]["tokens"])


def test_reference_tokenizers_load_offline():
    mistral, tekken = load("mistral-32k"), load("tekken-131k")
    assert mistral.vocab_size == 32000 and tekken.vocab_size > 130_000
    greek = "Η θάλασσα είναι ήρεμη σήμερα και ο ουρανός καθαρός."
    m_greek, t_greek = report.measure(mistral, greek), report.measure(tekken, greek)
    assert m_greek.fertility > 3 > t_greek.fertility > 1  # the 32k model splits Greek badly


def test_eval_command_with_references_writes_table_json_and_plot(trained, tmp_path):
    texts = []
    for code in LANGS[:2]:
        path = tmp_path / f"{code}.txt"
        path.write_text("\n".join(d["text"] for d in sample_docs(code)[:2]))
        texts += ["--text", f"{code}={path}"]
    result = occi("tokenizer", "eval", "--tokenizer", str(trained / "tokenizer"), *texts, "--reference", "mistral-32k",
                  "--reference", "tekken-131k", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "fertility mistral-32k" in result.stdout and "fertility tekken-131k" in result.stdout
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(data["tokenizers"]) == {"tokenizer", "mistral-32k", "tekken-131k"}
    assert (tmp_path / "out" / "fertility.png").read_bytes()[:4] == b"\x89PNG"
    as_json = occi("tokenizer", "eval", "--tokenizer", "tekken-131k", texts[0], texts[1], "--json")
    assert json.loads(as_json.stdout)["languages"] == [LANGS[0]]


def test_bad_inputs_get_one_clear_error_and_leave_nothing(tmp_path):
    missing = occi("tokenizer", "eval", "--tokenizer", "mistral-32k", "--text", f"fr={tmp_path / 'nope.txt'}")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad_spec = occi("tokenizer", "eval", "--tokenizer", "mistral-32k", "--text", "fr")
    assert bad_spec.returncode == 2 and "expected LANG=FILE" in bad_spec.stderr
    # a run language without text
    write_jsonl(tmp_path / "fr.jsonl", sample_docs("fr"))
    config = write_config(tmp_path, ["fr", "de"], [{"name": "web", "kind": "jsonl", "path": "fr.jsonl"}])
    data = yaml.safe_load(config.read_text())
    data["tokenizer"] = {"vocab_size": 300, "hard_vocab_limit": False}
    config.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    assert occi("corpora", "build", str(config), "--run-dir", str(run_dir)).returncode == 0
    no_text = occi("tokenizer", "train", str(config), "--run-dir", str(run_dir))
    assert no_text.returncode == 2 and "no training text for de" in no_text.stderr
    assert not (run_dir / "tokenizer").exists() and not list(run_dir.glob(".tokenizer*"))
    # a vocabulary too small for the characters of the text
    data["languages"] = ["fr"]
    data["tokenizer"] = {"vocab_size": 40, "hard_vocab_limit": True, "byte_fallback": False, "character_coverage": 1.0}
    config.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run-fr"  # another config: another run (a run keeps the config it started with)
    assert occi("corpora", "build", str(config), "--run-dir", str(run_dir)).returncode == 0
    too_small = occi("tokenizer", "train", str(config), "--run-dir", str(run_dir))
    assert too_small.returncode == 2 and "too small" in too_small.stderr
    assert not (run_dir / "tokenizer").exists() and not list(run_dir.glob(".tokenizer*"))


def test_unreadable_tokenizer_file(tmp_path):
    (tmp_path / "broken.model").write_bytes(b"not a model")
    with pytest.raises(OcciError, match="not a tokenizer"):
        load(str(tmp_path / "broken.model"))
