"""ExactFastText (occi/corpora/fastlid.py) against the fastText binding it re-implements."""
from __future__ import annotations

import json
from pathlib import Path

import fasttext
import pytest
import yaml

from conftest import DEMO_SAMPLES, REPO, occi
from occi import languages
from occi.corpora.config import LangIdConfig
from occi.corpora.fastlid import ExactFastText
from occi.corpora.langid import LanguageIdentifier, resolve_model

EDGE_CASES = [
    "", " ", "\t", "__label__de", "Das ist __label__fr ein Haus", "vor </s> nach dem Ende", "</s>",
    "a\x00b\x0bc\x0cd\re\tf  g", "Non\u00a0breaking\u2003spaces", "日本語のテキストです",
    json.loads('"Bonjour \\udcff tout le monde"'),
]


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


def _assert_same(model, exact: ExactFastText, texts: list[str], k: int = 5) -> None:
    """The same k labels in the same order, the same probabilities within 1e-5."""
    for text in texts:
        want, got = _binding(model, text, k), exact.predict(text, k)
        assert [p for _, p in got] == pytest.approx([p for _, p in want], abs=1e-5, rel=0), text
        assert [label for label, _ in got] == [label for label, _ in want], text


@pytest.fixture(scope="module")
def lid176():
    fasttext.FastText.eprint = lambda *args, **kwargs: None
    return fasttext.load_model(str(resolve_model(LangIdConfig())))


def test_same_labels_and_probabilities_as_the_binding_on_the_demo_corpus(lid176):
    exact = ExactFastText.for_model(lid176)
    assert exact is not None  # lid.176.ftz: hierarchical softmax, no word n-grams, dense output
    texts = _demo_texts()
    _assert_same(lid176, exact, texts)
    tops = {exact.predict(t, 1)[0][0].removeprefix("__label__") for t in texts if t.strip()}
    assert {languages.label_to_language(list(languages.LANGUAGES)).get(label) for label in tops} >= set(languages.LANGUAGES)
    assert len(exact.predict("", 5)) == 5  # the end-of-line token alone still reads as something


def test_a_bounded_cache_starts_over_and_gives_the_same_predictions(lid176):
    exact = ExactFastText(lid176, max_words=50)
    texts = _demo_texts()[:40]
    _assert_same(lid176, exact, texts)
    assert len(exact.words) <= 50 + max(len(t.split()) for t in texts) + 1


def test_corpora_build_is_identical_with_and_without_the_word_cache(tmp_path, demo_run):
    recipe = yaml.safe_load((REPO / "corpora" / "demo.yaml").read_text(encoding="utf-8"))
    recipe["sources"][0]["path"] = str(DEMO_SAMPLES / "*.jsonl")
    recipe["langid"]["word_cache"] = 500_000
    run = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    config = tmp_path / "word_cache.yaml"
    config.write_text(yaml.safe_dump({"name": run["name"], "languages": run["languages"], "seed": run["seed"],
                                      "corpora": recipe}, allow_unicode=True), encoding="utf-8")
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    slow, fast = demo_run / "corpora", tmp_path / "run" / "corpora"  # the demo: the binding (the default)
    files = sorted(p.relative_to(fast) for p in fast.rglob("*") if p.is_file() and not p.name.startswith("_"))
    assert files == sorted(p.relative_to(slow) for p in slow.rglob("*") if p.is_file() and not p.name.startswith("_"))
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        assert (fast / path).read_bytes() == (slow / path).read_bytes(), path
