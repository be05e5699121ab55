"""Real base tokenizers, offline: tiny random Mistral bases carrying Mistral-7B-v0.1's SentencePiece
model and Tekken (Mistral-Nemo's, Apertus'), as mistral-common ships them and transformers
converts them (tests/hf_bases.py), through keep, extend, data prepare, export and GGUF, compared
with transformers 5 and 4, SentencePiece and llama.cpp on the demo text of all 28 languages."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import DEMO_SAMPLES, needs_module, occi, transformers4_view
from hf_bases import make_real_tokenizer_base
from occi.languages import LANGUAGES
from occi.rundir import RunDir

ALL = list(LANGUAGES)
BASE_PIECES = 32000
"""Pieces of Mistral-7B-v0.1's tokenizer.model."""
ADD = 300
needs_llama_cpp = needs_module("llama_cpp", "llama-cpp-python")


def demo_texts(code: str) -> list[str]:
    return [json.loads(line)["text"] for line in (DEMO_SAMPLES / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()]


def run_config(folder: Path, base: Path, tokenizer) -> Path:
    config = {"name": "realtok", "languages": ALL, "corpora": {"recipe": "demo", "workers": 1}, "tokenizer": tokenizer,
              "model": {"base": str(base), "seq_length": 32}, "data": {"workers": 1},
              "train": {"micro_batch_size": 2, "global_batch_size": 4, "steps": 2, "warmup_steps": 1, "lr": 0.001,
                        "min_lr": 0.0001, "eval_interval": 2, "save_interval": 2, "log_interval": 1,
                        "eval_samples": 2}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    return folder / "run.yaml"


def run_stages(config: Path, run_dir: Path, *stages: list[str]) -> None:
    for stage in stages:
        result = occi(*stage, str(config), "--run-dir", str(run_dir), timeout=900)
        assert result.returncode == 0, (stage, result.stderr[-3000:])


def new_run(folder: Path, demo_run: Path, base: Path, tokenizer) -> tuple[Path, Path]:
    """(config, run dir) of a 28-language run on `base` whose corpora are the demo run's."""
    config = run_config(folder, base, tokenizer)
    shutil.copytree(demo_run / "corpora", folder / "run" / "corpora")
    return config, folder / "run"


def llama_cpp_vocab(path: Path):
    from llama_cpp import Llama

    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def gguf_value(reader, key: str):
    return reader.fields[key].contents()


@pytest.fixture(scope="session")
def sentencepiece_base(tmp_path_factory) -> Path:
    return make_real_tokenizer_base(tmp_path_factory.mktemp("sentencepiece") / "base", "sentencepiece")


@pytest.fixture(scope="session")
def tekken_base(tmp_path_factory) -> Path:
    return make_real_tokenizer_base(tmp_path_factory.mktemp("tekken") / "base", "tekken")


@pytest.fixture(scope="module", params=["sentencepiece", "tekken"])
def kept(request, demo_run, tmp_path_factory) -> tuple[str, Path, Path]:
    """(kind, run dir, base): `tokenizer: base`, data prepared in all 28 languages."""
    base = request.getfixturevalue(f"{request.param}_base")
    config, run_dir = new_run(tmp_path_factory.mktemp(f"kept-{request.param}"), demo_run, base, "base")
    run_stages(config, run_dir, ["tokenizer", "train"], ["data", "prepare"])
    return request.param, run_dir, base


@pytest.fixture(scope="module")
def tekken_gguf(tekken_base, tmp_path_factory) -> Path:
    """The f32 GGUF of the Tekken base, exported as a transformers model (<run>/hf) and converted."""
    folder = tmp_path_factory.mktemp("tekken-gguf")
    config = run_config(folder, tekken_base, "base")
    shutil.copytree(tekken_base, folder / "run" / "hf")
    run_stages(config, folder / "run", ["export", "--format", "gguf", "--quant", "f32"])
    return folder / "run" / "gguf" / "occi-realtok-f32.gguf"


@pytest.fixture(scope="module")
def extended(sentencepiece_base, demo_run, tmp_path_factory) -> tuple[Path, Path]:
    """(run dir, base): the SentencePiece base with `tokenizer: {extend: demo, add: ADD}`,
    imported, exported and converted to an f32 GGUF."""
    config, run_dir = new_run(tmp_path_factory.mktemp("extended"), demo_run, sentencepiece_base,
                              {"extend": "demo", "add": ADD})
    run_stages(config, run_dir, ["tokenizer", "train"], ["import"], ["export"],
               ["export", "--format", "gguf", "--quant", "f32"])
    return run_dir, sentencepiece_base


# ---------------------------------------------------------------- tokenizer: base

def test_kept_real_tokenizer_prepared_ids_equal_autotokenizer_in_every_language(kept):
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from transformers import AutoTokenizer

    from occi.corpora.reader import read_texts

    kind, run_dir, base = kept
    for name in ("tokenizer.json", "tokenizer.model"):
        if (base / name).is_file():
            assert (run_dir / "tokenizer" / name).read_bytes() == (base / name).read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    blend = RunDir(run_dir).read_blend()
    assert blend["vocab_size"] == len(tokenizer) == {"sentencepiece": 32000, "tekken": 131072}[kind]
    assert blend["eod_id"] == tokenizer.eos_token_id == 2
    assert blend["dtype"] == {"sentencepiece": "uint16", "tekken": "int32"}[kind]
    for code in ALL:
        texts = [text for _, text in read_texts(run_dir, code, "train")]
        dataset = IndexedDataset(blend["languages"][code]["prefix"])
        assert len(dataset) == len(texts) > 0, code
        assert [dataset[i].tolist() for i in range(len(dataset))] == \
            [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts], code


# ---------------------------------------------------------------- tokenizer: {extend: ...} on SentencePiece

def test_extended_tokenizer_model_and_tokenizer_json_are_one_tokenizer(extended):
    import sentencepiece as spm
    from tokenizers import Tokenizer
    from transformers import LlamaTokenizer

    from occi.tokenizer.sentencepiece_extend import NORMAL, read_model

    run_dir, base = extended
    folder = run_dir / "tokenizer"
    extension = json.loads((folder / "extension.json").read_text())
    assert 0 < extension["added"] <= ADD
    new_ids = list(range(BASE_PIECES, BASE_PIECES + extension["added"]))
    assert [p["id"] for p in extension["pieces"]] == new_ids
    old, model = read_model(base / "tokenizer.model"), read_model(folder / "tokenizer.model")
    assert len(model.pieces) == BASE_PIECES + extension["added"]
    assert [(p.piece, p.score, p.type) for p in model.pieces[:BASE_PIECES]] == \
        [(p.piece, p.score, p.type) for p in old.pieces]  # existing pieces, ids and scores unchanged
    new = model.pieces[BASE_PIECES:]
    assert [p.piece for p in new] == [p["piece"] for p in extension["pieces"]]
    assert all(p.type == NORMAL for p in new)
    scores = [p.score for p in new]  # after every base piece, in the order extend joins them
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    assert scores[0] < min(p.score for p in old.pieces)
    before = Tokenizer.from_file(str(base / "tokenizer.json")).get_vocab(with_added_tokens=True)
    after = Tokenizer.from_file(str(folder / "tokenizer.json"))
    vocab = after.get_vocab(with_added_tokens=True)
    assert {piece: vocab[piece] for piece in before} == before
    assert {p["piece"]: p["id"] for p in extension["pieces"]} == {k: v for k, v in vocab.items() if k not in before}
    merges = json.loads((folder / "tokenizer.json").read_text())["model"]["merges"]
    base_merges = json.loads((base / "tokenizer.json").read_text())["model"]["merges"]
    pair = (lambda m: tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m))
    position = {pair(m): i for i, m in enumerate(merges)}
    assert len(position) == len(merges) > len(base_merges)
    # the base's merges keep their order (new ones go between or after them)
    assert sorted(position[pair(m)] for m in base_merges) == [position[pair(m)] for m in base_merges]
    # what transformers' own converter makes of the extended tokenizer.model: the same pieces and merges
    model_only = run_dir / "converted"
    model_only.mkdir()
    shutil.copy2(folder / "tokenizer.model", model_only / "tokenizer.model")
    converted = json.loads(LlamaTokenizer.from_pretrained(str(model_only)).backend_tokenizer.to_str())["model"]
    assert converted["vocab"] == json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    assert set(map(pair, converted["merges"])) == set(position)
    # SentencePiece itself segments with the new pieces, exactly as the tokenizer.json does
    processor = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    used = set()
    for code in ALL:
        for text in demo_texts(code):
            ids = processor.encode(text)
            assert ids == after.encode(text, add_special_tokens=False).ids, code
            used.update(i for i in ids if i >= BASE_PIECES)
    assert len(used) > extension["added"] // 4, "the new pieces are used"


def test_extended_export_loads_in_transformers_5_and_4_with_the_same_ids(extended, transformers4):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    run_dir, _ = extended
    hf = run_dir / "hf"
    assert (hf / "tokenizer.model").read_bytes() == (run_dir / "tokenizer" / "tokenizer.model").read_bytes()
    texts = [demo_texts(code)[0][:400] for code in ALL]
    processor = spm.SentencePieceProcessor(model_file=str(hf / "tokenizer.model"))
    expected = [[processor.bos_id(), *processor.encode(text)] for text in texts]  # the base adds BOS
    assert any(i >= BASE_PIECES for ids in expected for i in ids)
    assert [AutoTokenizer.from_pretrained(hf)(text)["input_ids"] for text in texts] == expected
    seen = transformers4_view(transformers4, hf, texts)
    assert seen["version"].startswith("4.") and seen["ids"] == expected


def test_extended_rows_start_as_the_mean_of_their_parts_and_old_rows_are_kept(extended):
    from transformers import AutoModelForCausalLM

    run_dir, base = extended
    extension = json.loads((run_dir / "tokenizer" / "extension.json").read_text())
    exported, original = (AutoModelForCausalLM.from_pretrained(f) for f in (run_dir / "hf", base))
    rows, before = exported.get_input_embeddings().weight, original.get_input_embeddings().weight
    head, head_before = exported.lm_head.weight, original.lm_head.weight
    assert rows.shape[0] >= BASE_PIECES + extension["added"]
    assert torch.equal(rows[:BASE_PIECES], before) and torch.equal(head[:BASE_PIECES], head_before)
    for piece in extension["pieces"]:
        assert torch.allclose(rows[piece["id"]], before[piece["parts"]].mean(0), atol=1e-6)
        assert torch.allclose(head[piece["id"]], head_before[piece["parts"]].mean(0), atol=1e-6)


def test_extended_report_compares_base_and_extended_on_the_same_text(extended):
    run_dir, _ = extended
    report = json.loads((run_dir / "tokenizer" / "report.json").read_text())
    names = list(report["tokenizers"])
    assert names[1] == "base" and names[0].startswith("extended (+")
    comparison = report["comparison"]
    assert sorted(comparison["languages"]) == sorted(ALL)
    for code in ALL:
        tokens = [report["tokenizers"][name]["languages"][code]["tokens"] for name in names]
        assert comparison["languages"][code]["token_ratio"] == round(tokens[0] / tokens[1], 4) <= 1.0
    assert min(comparison["languages"][code]["token_ratio"] for code in ALL) < 1.0


# ---------------------------------------------------------------- GGUF: llama.cpp's vocabularies

def test_gguf_adds_bos_to_a_sentencepiece_vocabulary_as_its_tokenizer_json_does(sentencepiece_base, tmp_path):
    from transformers import AutoTokenizer, LlamaTokenizer

    from occi.gguf.vocab import read_vocab

    assert read_vocab(sentencepiece_base, BASE_PIECES).add_bos is True
    shutil.copy2(sentencepiece_base / "tokenizer.model", tmp_path / "tokenizer.model")
    LlamaTokenizer.from_pretrained(str(tmp_path)).save_pretrained(str(tmp_path))  # transformers 5: no BOS
    assert AutoTokenizer.from_pretrained(tmp_path)("Hallo")["input_ids"][0] != 1
    assert "add_bos_token" not in json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert read_vocab(tmp_path, BASE_PIECES).add_bos is False


@needs_llama_cpp
def test_gguf_of_the_extended_sentencepiece_base_is_llamas_model_and_tokenizes_as_transformers(extended):
    import gguf
    from transformers import AutoTokenizer

    from occi.tokenizer.sentencepiece_extend import read_model

    run_dir, _ = extended
    path = run_dir / "gguf" / "occi-realtok-f32.gguf"
    reader = gguf.GGUFReader(str(path))
    model = read_model(run_dir / "hf" / "tokenizer.model")
    assert gguf_value(reader, "tokenizer.ggml.model") == "llama"
    count = len(model.pieces)
    assert gguf_value(reader, "tokenizer.ggml.tokens")[:count] == [p.piece for p in model.pieces]
    assert gguf_value(reader, "tokenizer.ggml.scores")[:count] == pytest.approx([p.score for p in model.pieces])
    assert gguf_value(reader, "tokenizer.ggml.token_type")[:count] == [int(p.type) for p in model.pieces]
    assert gguf_value(reader, "tokenizer.ggml.add_bos_token") is True
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "hf")
    vocab = llama_cpp_vocab(path)
    for code in ALL:
        for text in demo_texts(code):
            assert vocab.tokenize(text.encode("utf-8"), add_bos=True, special=False) == \
                tokenizer(text)["input_ids"], code


@needs_llama_cpp
def test_gguf_of_a_tekken_base_names_the_tekken_pre_tokenizer_and_tokenizes_as_transformers(tekken_gguf, tekken_base):
    import gguf
    from transformers import AutoTokenizer

    reader = gguf.GGUFReader(str(tekken_gguf))
    assert gguf_value(reader, "tokenizer.ggml.model") == "gpt2"
    assert gguf_value(reader, "tokenizer.ggml.pre") == "tekken"
    tokenizer = AutoTokenizer.from_pretrained(tekken_base)
    assert gguf_value(reader, "tokenizer.ggml.tokens")[:len(tokenizer)] == \
        tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert gguf_value(reader, "tokenizer.ggml.add_bos_token") is False  # as the converted tokenizer.json
    vocab = llama_cpp_vocab(tekken_gguf)
    for code in ALL:
        for text in demo_texts(code):
            assert vocab.tokenize(text.encode("utf-8"), add_bos=True, special=False) == \
                tokenizer(text)["input_ids"], code
