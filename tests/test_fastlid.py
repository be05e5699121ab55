"""CompiledFastText (occi/corpora/fastlid.py) against the fastText binding it re-implements: lid.176
on the demo corpus, and small model files of every kind it reproduces, written here."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import fasttext
import numpy as np
import pytest
import yaml

from conftest import DEMO_SAMPLES, REPO, occi
from occi import languages
from occi.corpora.config import LangIdConfig
from occi.corpora.fastlid import CompiledFastText, ModelFileError, read_model, unsupported
from occi.corpora.langid import resolve_model

EDGE_CASES = [
    "", " ", "\t", "__label__de", "Das ist __label__fr ein Haus", "vor </s> nach dem Ende", "</s>",
    "a\x00b\x0bc\x0cd\re\tf  g", "Non\u00a0breaking\u2003spaces", "日本語のテキストです",
    json.loads('"Bonjour \\udcff tout le monde"'), "\u00e9" * 300, "x" * 5000,
]

fasttext.FastText.eprint = lambda *args, **kwargs: None  # the binding's load warning


def _demo_texts() -> list[str]:
    texts = []
    for path in sorted(DEMO_SAMPLES.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    for path in sorted((REPO / "bench" / "corpora" / "langid_text").glob("*.txt")):
        texts += path.read_text(encoding="utf-8").splitlines()
    return [text.replace("\n", " ") for text in texts] + EDGE_CASES


def _binding(model, text: str, k: int) -> list[tuple[str, float]]:
    try:
        labels, probs = model.predict(text, k=k)
    except (TypeError, UnicodeError):  # lone surrogates: what occi's fallback sends instead
        labels, probs = model.predict(text.encode("utf-8", "replace").decode("utf-8"), k=k)
    return list(zip(labels, map(float, probs)))


def _assert_same(binding, compiled: CompiledFastText, texts: list[str], k: int = 5) -> None:
    """The same labels in the same order with the same float32 probabilities, bit for bit, one
    text at a time and the texts as one block (predict_block: one compiled call)."""
    expected = [_binding(binding, text, k) for text in texts]
    for text, want in zip(texts, expected):
        assert compiled.predict(text, k) == want, text
    assert compiled.predict_block(texts, k) == expected
    assert compiled.predict_block(texts[::-1][:7], k) == expected[::-1][:7]


def test_lid176_bit_for_bit_on_the_demo_corpus():
    path = resolve_model(LangIdConfig())
    compiled = CompiledFastText.from_file(path)
    assert compiled is not None  # lid.176.ftz: quantized and pruned input, hierarchical softmax
    assert compiled.model.prune_size > 0 and len(compiled.model.input_matrix.codes) > 0
    texts = _demo_texts()
    _assert_same(fasttext.load_model(str(path)), compiled, texts)
    tops = {compiled.predict(t, 1)[0][0].removeprefix("__label__") for t in texts if t.strip()}
    assert {languages.label_to_language(list(languages.LANGUAGES)).get(label) for label in tops} >= set(languages.LANGUAGES)
    assert len(compiled.predict("", 5)) == 5  # the end-of-line token alone still reads as something
    with pytest.raises(ValueError, match="one line"):
        compiled.predict("two\nlines")
    assert compiled.predict_block([], 5) == []
    assert compiled.predict_block(["two\nlines", "\n"], 5) == [compiled.predict("two lines", 5), compiled.predict(" ", 5)]


# ------------------------------------------------------------------ model files written here

VOCABULARY = ["haus", "maison", "casa", "σπίτι", "дом", "</s>", "talo", "a", "über", "niño"]


def _write_model(path: Path, rng: np.random.Generator, *, loss: int, labels: int, dim: int, minn: int, maxn: int,
                 bucket: int, word_ngrams: int, quantized: bool = False, qnorm: bool = False, sub_dim: int = 2,
                 prune_keep: int | None = None) -> Path:
    """A supervised fastText model file in fastText 0.9's layout, with random weights."""
    words = [w.encode() for w in VOCABULARY]
    label_names = [f"__label__l{i}".encode() for i in range(labels)]
    counts = rng.integers(1, 6, size=labels)  # small counts: ties in the Huffman tree
    out = bytearray(struct.pack("<ii", 793712314, 12))
    out += struct.pack("<12id", dim, 5, 5, 1, 5, word_ngrams, loss, 3, bucket, minn, maxn, 100, 1e-4)
    pruned = prune_keep is not None
    out += struct.pack("<iiiqq", len(words) + labels, len(words), labels, 1000, prune_keep if pruned else -1)
    for i, word in enumerate(words):
        out += word + b"\0" + struct.pack("<qb", 100 - i, 0)
    for name, count in zip(label_names, counts):
        out += name + b"\0" + struct.pack("<qb", int(count), 1)
    ngram_rows = bucket
    if pruned:
        kept = rng.choice(bucket, size=prune_keep, replace=False)
        for new, old in enumerate(kept):
            out += struct.pack("<ii", int(old), new)
        ngram_rows = prune_keep
    rows = len(words) + ngram_rows
    out += struct.pack("<?", quantized)
    if quantized:
        subquantizers = (dim + sub_dim - 1) // sub_dim
        last = dim - (subquantizers - 1) * sub_dim
        codes = rng.integers(0, 256, size=rows * subquantizers, dtype=np.uint8)
        out += struct.pack("<?qqi", qnorm, rows, dim, codes.size) + codes.tobytes()
        out += struct.pack("<iiii", dim, subquantizers, sub_dim, last)
        out += rng.normal(0, 1, dim * 256).astype("<f4").tobytes()
        if qnorm:
            out += rng.integers(0, 256, size=rows, dtype=np.uint8).tobytes()
            out += struct.pack("<iiii", 1, 1, 1, 1) + rng.uniform(0.1, 2, 256).astype("<f4").tobytes()
    else:
        out += struct.pack("<qq", rows, dim) + rng.normal(0, 1, rows * dim).astype("<f4").tobytes()
    out += struct.pack("<?", False)
    out += struct.pack("<qq", labels, dim) + rng.normal(0, 1.5, labels * dim).astype("<f4").tobytes()
    path.write_bytes(bytes(out))
    return path


def _random_texts(rng: np.random.Generator, count: int) -> list[str]:
    pieces = VOCABULARY + ["__label__l1", "__label__zz", "x", "ab", "日本", "ß", "\t", "\x0b", "\x00", "  ", "é"]
    return ["".join(rng.choice(pieces) + (" " if rng.random() < 0.7 else "") for _ in range(rng.integers(0, 30)))
            for _ in range(count)] + ["", " ", "</s>", "haus </s> maison"]


MODELS = {
    "hs, dense, char n-grams": dict(loss=1, labels=9, dim=6, minn=2, maxn=4, bucket=50, word_ngrams=1),
    "softmax, dense, word bigrams": dict(loss=3, labels=5, dim=4, minn=3, maxn=5, bucket=40, word_ngrams=2),
    "hs, words only, trigrams": dict(loss=1, labels=4, dim=3, minn=0, maxn=0, bucket=30, word_ngrams=3),
    "hs, quantized, pruned, norms": dict(loss=1, labels=12, dim=5, minn=1, maxn=3, bucket=200, word_ngrams=2,
                                         quantized=True, qnorm=True, sub_dim=2, prune_keep=60),
    "softmax, quantized, pruned": dict(loss=3, labels=3, dim=4, minn=2, maxn=3, bucket=100, word_ngrams=1,
                                       quantized=True, qnorm=False, sub_dim=4, prune_keep=30),
    "hs, quantized, norms, subquantizers of 2 (lid.176's shape)": dict(
        loss=1, labels=7, dim=8, minn=2, maxn=4, bucket=150, word_ngrams=1, quantized=True, qnorm=True, sub_dim=2,
        prune_keep=80),
    "hs, quantized, everything pruned": dict(loss=1, labels=3, dim=4, minn=2, maxn=3, bucket=100, word_ngrams=1,
                                             quantized=True, sub_dim=2, prune_keep=0),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_model_files_of_every_supported_kind_bit_for_bit(tmp_path, kind):
    rng = np.random.default_rng(sorted(MODELS).index(kind))
    path = _write_model(tmp_path / "model.bin", rng, **MODELS[kind])
    compiled = CompiledFastText.from_file(path)
    assert compiled is not None, unsupported(read_model(path))
    _assert_same(fasttext.load_model(str(path)), compiled, _random_texts(rng, 300), k=3)
    _assert_same(fasttext.load_model(str(path)), compiled, _random_texts(rng, 50), k=20)


def test_models_it_does_not_reproduce_are_named_and_broken_files_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    ns = _write_model(tmp_path / "ns.bin", rng, loss=2, labels=3, dim=4, minn=2, maxn=3, bucket=10, word_ngrams=1)
    assert unsupported(read_model(ns)) == "loss ns (only hs and softmax are reproduced)"
    assert CompiledFastText.from_file(ns) is None
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(ns.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="truncated"):
        read_model(truncated)
    (tmp_path / "text.bin").write_text("not a model")
    with pytest.raises(ModelFileError, match="not a fastText model"):
        read_model(tmp_path / "text.bin")


def test_corpora_build_is_identical_with_the_binding(tmp_path, demo_run):
    recipe = yaml.safe_load((REPO / "corpora" / "demo.yaml").read_text(encoding="utf-8"))
    recipe["sources"][0]["path"] = str(DEMO_SAMPLES / "*.jsonl")
    recipe.setdefault("langid", {})["native"] = False
    run = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    config = tmp_path / "binding.yaml"
    config.write_text(yaml.safe_dump({"name": run["name"], "languages": run["languages"], "seed": run["seed"],
                                      "corpora": recipe}, allow_unicode=True), encoding="utf-8")
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    native, binding = demo_run / "corpora", tmp_path / "run" / "corpora"  # the demo: compiled (the default)
    files = sorted(p.relative_to(binding) for p in binding.rglob("*") if p.is_file() and not p.name.startswith("_"))
    assert files == sorted(p.relative_to(native) for p in native.rglob("*") if p.is_file() and not p.name.startswith("_"))
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        assert (binding / path).read_bytes() == (native / path).read_bytes(), path


def test_the_division_free_modulo_equals_the_remainder():
    from occi.corpora.fastlid import _mod32

    rng = np.random.default_rng(3)
    values = np.concatenate(([0, 1, 2**31 - 1, 2**31, 2**32 - 1], rng.integers(0, 2**32, 2000)))
    for divisor in [1, 2, 3, 7, 100, 2_000_000, 4_000_037, 2**31 - 1, 2**31, 2**32 - 1]:
        with np.errstate(over="ignore"):  # divisor 1: the magic number wraps to 0, and x % 1 is 0
            magic = np.uint64(0xFFFFFFFFFFFFFFFF) // np.uint64(divisor) + np.uint64(1)
        got = [_mod32(int(v), magic, np.uint64(divisor)) for v in values]
        assert got == [int(v) % divisor for v in values], divisor
