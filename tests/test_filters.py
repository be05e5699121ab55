"""Each filter, each drop reason, on text written for these tests."""
from __future__ import annotations

import json
from pathlib import Path

import fasttext
import pytest

from occi.corpora.config import LangIdConfig, NormalizeConfig, QualityConfig
from occi.corpora.document import Document
from occi.corpora.normalize import Normalizer
from occi.corpora.langid import LanguageFilter, LanguageIdentifier, resolve_model
from occi.corpora.quality import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter

GOOD_DE = (
    "Am Samstag fahren wir mit dem Zug an den See, weil das Wetter endlich wieder warm ist. "
    "Meine Schwester bringt einen Korb mit Brot, Käse und Äpfeln mit, und ich packe die Decke "
    "und zwei Bücher ein. Am Ufer gibt es einen kleinen Steg, von dem die Kinder ins Wasser "
    "springen. Später wollen wir zum Hafen laufen und dort ein Eis essen, bevor der letzte Zug "
    "am Abend zurück in die Stadt fährt. Es ist nicht weit, aber es fühlt sich an wie Urlaub."
)


def doc(text: str, language: str | None = "de") -> Document:
    return Document(text=text, id="t", source="test", language=language)


# ---------------------------------------------------------------- normalisation

@pytest.fixture
def normalizer():
    return Normalizer(NormalizeConfig())


def test_normalizer_applies_nfc_and_line_endings(normalizer):
    d = doc("Cafe\u0301 und Gru\u0308\u00dfe\r\nzweite Zeile\rdritte\x00\x07 Zeile\x85 ")
    assert normalizer.filter(d) is None
    assert d.text == "Café und Grüße\nzweite Zeile\ndritte Zeile"


def test_normalizer_repairs_mojibake(normalizer):
    d = doc("Die KÃ¤sespÃ¤tzle im CafÃ© schmecken Ã¼berall gleich gut.")
    assert normalizer.filter(d) is None
    assert d.text == "Die Käsespätzle im Café schmecken überall gleich gut."
    assert d.metadata["encoding_fixed"] is True


def test_normalizer_leaves_correct_text_alone(normalizer):
    d = doc(GOOD_DE)
    assert normalizer.filter(d) is None and d.text == GOOD_DE and "encoding_fixed" not in d.metadata


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("  \n\t \x00 ", "empty"),
    ("Kaputt \ufffd\ufffd\ufffd\ufffd text \ufffd\ufffd", "broken_encoding"),
    ("lone surrogate \ud800 here", "invalid_unicode"),
])
def test_normalizer_drop_reasons(normalizer, text, reason):
    assert normalizer.filter(doc(text)) == reason



def test_normalizer_scan_matches_its_patterns():
    """Normalizer searches with one numba pass (normalize._scan); its answers are the regexes'."""
    import random

    from occi.corpora import normalize
    from occi.corpora.kernels import code_points

    def scanned(text: str) -> tuple[bool, ...]:
        return tuple(bool(flag) for flag in normalize._scan(code_points(text), normalize._CONTINUATION_SET))

    def searched(text: str) -> tuple[bool, ...]:
        return (bool(normalize._SURROGATE.search(text)), bool(normalize._MOJIBAKE_HINT.search(text)),
                bool(normalize._CONTROL.search(text)), "\r" in text)

    rng = random.Random(4)
    pieces = ["a", "Ã", "Â", "©", "â€™", "\u00c1", "\u00c2", "\u00ef", "\u00f0", "\u0080", "\u00bf", "\u00c0", "\u2122",
              "\ud800", "\udfff", "\r", "\n", "\x00", "\x08", "\t", "\x0b", "\x1f", "\x7f", "\x9f", "\xa0", "\ufffd", "😀"]
    texts = [chr(c) for c in range(0x3000)] + [lead + chr(c) for lead in "\u00c1\u00c2\u00e9\u00ef\u00f0" for c in range(0x3000)]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.choice([1, 2, 3, 8, 40]))) for _ in range(3000)]
    for text in texts:
        assert scanned(text) == searched(text), repr(text)


# ---------------------------------------------------------------- language ID

@pytest.fixture(scope="module")
def identifier():
    return LanguageIdentifier(resolve_model(LangIdConfig()), ["de", "fr", "hr"])


def test_langid_keeps_run_language_with_score(identifier):
    d = doc(GOOD_DE, language=None)
    assert LanguageFilter(identifier, ["de", "fr"], {}).filter(d) is None
    assert d.language == "de" and d.language_score > 0.9


def test_langid_drops_other_languages(identifier):
    d = doc("Сегодня утром мы пошли в парк и долго гуляли вдоль реки, а потом пили чай дома.", language=None)
    assert LanguageFilter(identifier, ["de", "fr"], {}).filter(d) == "not_a_run_language"
    assert d.metadata["lid_top_label"] == "ru"


def test_langid_threshold_from_config_overrides_table(identifier):
    d = doc(GOOD_DE, language=None)
    assert LanguageFilter(identifier, ["de"], {"de": 0.99999}).filter(d) == "below_threshold"
    assert d.language == "de"


def test_langid_declared_language_must_agree(identifier):
    d = doc(GOOD_DE, language=None)
    d.metadata["language_declared"] = "fr"
    assert LanguageFilter(identifier, ["de", "fr"], {}).filter(d) == "wrong_language"


def test_langid_sums_serbo_croatian_labels_for_croatian(identifier):
    text = "Sutra idemo vlakom na more, a baka će nam spremiti kruh i sir za put."
    labels, scores = fasttext.load_model(str(resolve_model(LangIdConfig()))).predict(text, k=5)
    expected = sum(float(s) for label, s in zip(labels, scores)
                   if label.removeprefix("__label__") in {"hr", "sh", "bs", "sr"})
    code, score, _ = identifier.predict(text)
    assert code == "hr" and score == pytest.approx(min(expected, 1.0))


BENCH_TEXT = Path(__file__).resolve().parents[1] / "bench" / "corpora" / "langid_text"


def _lines(name: str) -> list[str]:
    return [line for line in (BENCH_TEXT / f"{name}.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


def test_langid_group_sums_do_not_outvote_the_top_label(identifier):
    """Slovenian lines where lid.176 puts `sl` first but hr+sr+sh+bs add up to more: Slovenian,
    with the score of its own labels only (the sum used to make them Croatian)."""
    for text in (_lines("sl")[0], _lines("sl")[2]):
        ranked = identifier.backend.ranked(text)
        assert ranked[0][0] == "sl"
        assert sum(s for label, s in ranked if label in {"hr", "sh", "bs", "sr"}) > ranked[0][1]
        code, score, top = identifier.predict(text)
        assert (code, top) == ("sl", "sl") and score == pytest.approx(ranked[0][1])


@pytest.mark.parametrize("name, expected", [("sl", "sl"), ("hr", "hr"), ("bs", "hr"), ("sr", "hr"), ("no", "no")])
def test_langid_language_is_the_top_labels_and_the_group_gives_the_score(identifier, name, expected):
    for text in _lines(name):
        ranked = identifier.backend.ranked(text)
        top_code = identifier.label_language.get(ranked[0][0])
        if top_code is None:
            continue
        code, score, _ = identifier.predict(text)
        group = identifier.members[code]
        assert code == top_code and score == pytest.approx(min(1.0, sum(s for label, s in ranked if label in group)))


@pytest.fixture(scope="module")
def heliport_identifier():
    from occi import languages

    return LanguageIdentifier(None, list(languages.LANGUAGES), backend="heliport")


@pytest.mark.parametrize("name, expected", [("sl", "sl"), ("hr", "hr"), ("bs", "hr"), ("no", "no"), ("sk", "sk"),
                                            ("da", "da"), ("mt", "mt"), ("ga", "ga")])
def test_heliport_backend_reads_the_confusable_languages(heliport_identifier, name, expected):
    results = [heliport_identifier.predict(text) for text in _lines(name)]
    assert [code for code, _, _ in results] == [expected] * len(results)
    assert all(score > 0 for _, score, _ in results)


def test_heliport_backend_through_the_filter_and_the_config(heliport_identifier, tmp_path):
    d = doc(_lines("sl")[0], language=None)
    assert LanguageFilter(heliport_identifier, ["sl", "hr"], {}).filter(d) is None
    assert d.language == "sl" and d.metadata["lid_top_label"] == "slv" and d.language_score > 1.0
    with pytest.raises(ValueError, match="heliport has its model built in"):
        LangIdConfig(backend="heliport", model="lid.176.bin")
    assert LangIdConfig(backend="heliport", thresholds={"sl": 2.5}).thresholds == {"sl": 2.5}
    with pytest.raises(ValueError, match="thresholds.sl"):
        LangIdConfig(thresholds={"sl": 2.5})


def test_second_opinion_lets_heliport_name_the_confusable_languages():
    from occi import languages

    assert LangIdConfig().second_opinion is False  # opt-in: heliport's model costs 850 MB per worker
    codes = list(languages.LANGUAGES)
    plain = LanguageIdentifier(resolve_model(LangIdConfig()), codes)
    second = LanguageIdentifier(resolve_model(LangIdConfig()), codes, second_opinion=True)
    norwegian = _lines("no")
    assert [plain.predict(t)[0] for t in norwegian].count("da") >= 1  # lid.176 reads some as Danish
    for text in norwegian:
        code, score, _ = second.predict(text)
        ranked = plain.backend.ranked(text)
        assert code == "no" and score == pytest.approx(min(1.0, sum(s for l, s in ranked if l in plain.members["no"])))
    assert [second.predict(t)[0] for t in _lines("de")] == ["de"] * len(_lines("de"))  # not confusable: lid.176


def test_langid_accepts_lone_surrogates(identifier):
    text = json.loads('"Bonjour \\udcff tout le monde, comment allez-vous aujourd\'hui ?"')
    code, score, _ = identifier.predict(text)
    assert code == "fr" and score > 0.5


# ---------------------------------------------------------------- Gopher quality

@pytest.fixture
def gopher():
    return GopherQualityFilter(QualityConfig())


def test_gopher_quality_keeps_good_text(gopher):
    assert gopher.filter(doc(GOOD_DE)) is None


@pytest.mark.parametrize("text, reason", [
    ("Ein kurzer Satz mit der Sonne und dem Mond.", "too_few_words"),
    (" ".join(["die Bahn"] * 60_000), "too_many_words"),
    (" ".join(["der", "a", "in", "die"] * 20), "avg_word_length"),
    (" ".join(["Donaudampfschifffahrtsgesellschaftskapitän", "der", "die"] * 20), "avg_word_length"),
    (GOOD_DE + " #heute #sonne #see #urlaub #zug #brot #käse #kinder #eis #hafen", "symbol_ratio"),
    ("\n".join(["• Äpfel und Birnen aus dem Garten"] * 12), "bullet_lines"),
    ("\n".join(["Und dann kam der Zug mit den vielen Leuten…"] * 4 + [GOOD_DE]), "ellipsis_lines"),
    (" ".join(["12,5", "1999", "der", "4711", "0815", "2024"] * 12), "non_alpha_words"),
    (" ".join(["Haus", "Garten", "Straße", "Auto", "Fenster"] * 12), "too_few_stop_words"),
])
def test_gopher_quality_drop_reasons(gopher, text, reason):
    assert gopher.filter(doc(text)) == reason


def test_gopher_quality_per_language_override():
    cfg = QualityConfig(per_language={"fi": {"gopher_quality": {"min_doc_words": 5}}})
    text = "Minä ja sinä olemme täällä ja se on hyvä."
    assert GopherQualityFilter(cfg).filter(doc(text, "fi")) is None
    assert GopherQualityFilter(cfg).filter(doc(text, "et")) == "too_few_words"


# ---------------------------------------------------------------- Gopher repetition

@pytest.fixture
def repetition():
    return GopherRepetitionFilter(QualityConfig())


def test_gopher_repetition_keeps_good_text(repetition):
    assert repetition.filter(doc(GOOD_DE)) is None


@pytest.mark.parametrize("text, reason", [
    ("\n\n".join(["Der Zug fährt um acht Uhr ab."] * 3 + ["Wir warten am Gleis."]), "dup_para_frac"),
    ("\n".join(["Heute ist Markt.", "Heute ist Markt.", "Heute ist Markt.", "Morgen nicht."]), "dup_line_frac"),
    ("\n".join(["Heute ist auf dem großen Platz wieder Markt mit Obst und Gemüse."] * 2 + [f"Zeile {i} ist neu." for i in range(6)]), "dup_line_char_frac"),
    (" ".join(["billige Flüge"] * 40), "top_2gram"),
    (" ".join(f"Wort{i}" for i in range(40)) + " " + " ".join(["eins zwei drei vier fünf sechs sieben acht neun zehn"] * 3), "dup_5gram"),
])
def test_gopher_repetition_drop_reasons(repetition, text, reason):
    assert repetition.filter(doc(text)) == reason


def test_duplicated_ngram_chars_counts_each_covered_word_once():
    # bigrams "aa bb" (0, 3) and "bb ccc" (1, 4) repeat: words 0..5 are covered, "x" is not
    assert _kernel_figures("aa bb ccc aa bb ccc x", 2)[4][1] == 2 + 2 + 3 + 2 + 2 + 3
    assert _kernel_figures("aa bb ccc dd", 2)[4][1] == 0


def test_gopher_repetition_checks_larger_ngrams_after_a_passing_smaller_one():
    cfg = QualityConfig()
    cfg.gopher_repetition.top_ngram_frac = {}
    cfg.gopher_repetition.dup_ngram_frac = {5: 0.9, 8: 0.05}
    text = " ".join(f"Wort{i}" for i in range(40)) + " " + " ".join(["eins zwei drei vier fünf sechs sieben acht"] * 2)
    assert GopherRepetitionFilter(cfg).filter(doc(text)) == "dup_8gram"
    cfg.gopher_repetition.dup_ngram_frac = {5: 0.9, 9: 0.05}  # no 9-gram repeats
    assert GopherRepetitionFilter(cfg).filter(doc(text)) is None


def test_gopher_repetition_paragraph_chars():
    cfg = QualityConfig()
    cfg.gopher_repetition.dup_para_frac = 0.9
    long_para = "Der lange Absatz über den Hafen und die Schiffe wiederholt sich hier einmal."
    text = "\n\n".join([long_para, long_para, "Kurz.", "Auch kurz.", "Noch einer."])
    assert GopherRepetitionFilter(cfg).filter(doc(text)) == "dup_para_char_frac"


# ---------------------------------------------------------------- FineWeb lines

@pytest.fixture
def fineweb():
    return FineWebQualityFilter(QualityConfig())


def test_fineweb_keeps_good_text(fineweb):
    assert fineweb.filter(doc(GOOD_DE)) is None


@pytest.mark.parametrize("text, reason", [
    ("\n".join(["Startseite", "Über uns", "Kontakt", "Impressum", "Datenschutz", "Warenkorb", "Hilfe", "Suche"]), "line_punct_ratio"),
    ("\n".join(["Das ist gut.", "Ja.", "Nein.", "Vielleicht morgen.", GOOD_DE]), "short_line_ratio"),
    ("\n".join([GOOD_DE, "Dieser Satz steht zweimal in dem Text, das ist nicht gut.", "Dieser Satz steht zweimal in dem Text, das ist nicht gut."]), "char_dup_ratio"),
])
def test_fineweb_drop_reasons(fineweb, text, reason):
    assert fineweb.filter(doc(text)) == reason


def test_fineweb_list_ratio():
    cfg = QualityConfig()
    cfg.fineweb.short_line_thr = 1.1  # let the list through the short-line rule to reach list_ratio
    lines = [f"Punkt {i}: Brot." for i in range(30)]
    assert FineWebQualityFilter(cfg).filter(doc("\n".join(lines))) == "list_ratio"


# ---------------------------------------------------------------- repetition kernels
# GopherRepetitionFilter counts with numba kernels over code points; the plain Python below is
# the rule they must match figure for figure (Counter.most_common's first-to-occur among ties).

def _duplicated(elements: list[str]) -> tuple[int, int, int]:
    seen: set[str] = set()
    count = chars = 0
    for element in elements:
        if element in seen:
            count, chars = count + 1, chars + len(element)
        seen.add(element)
    return len(elements), count, chars


def _reference_figures(text: str, largest: int):
    """(paragraphs, lines, words, per n: (top n-gram chars, its count), per n: duplicated chars)."""
    import re
    from collections import Counter

    words = text.split()
    tops, duplicated = [], []
    for n in range(1, largest + 1):
        ngrams = list(zip(*(words[i:] for i in range(n))))
        if not ngrams:
            tops.append((0, 0))
            duplicated.append(0)
            continue
        counts = Counter(ngrams)
        top, top_count = counts.most_common(1)[0]
        tops.append((len(" ".join(top)), top_count))
        covered = [False] * len(words)
        for start, ngram in enumerate(ngrams):
            if counts[ngram] > 1:
                covered[start:start + n] = [True] * n
        duplicated.append(sum(len(w) for w, c in zip(words, covered) if c))
    return (_duplicated(re.split(r"\n{2,}", text.strip())), _duplicated(re.split(r"\n+", text)), len(words),
            tops, duplicated)


def _kernel_figures(text: str, largest: int):
    from occi.corpora import quality
    from occi.corpora.kernels import code_points

    *spans, words, (top_chars, top_count, duplicated) = quality._repetition_figures(code_points(text), largest)
    return (tuple(spans[:3]), tuple(spans[3:]), words, [(int(top_chars[n]), int(top_count[n])) for n in range(1, largest + 1)],
            [int(duplicated[n]) for n in range(1, largest + 1)])


def _random_texts(seed: int, count: int) -> list[str]:
    import random

    rng = random.Random(seed)
    pieces = ["a", "bb", "ccc", "ée", "ß", "Ωμέγα", "x" * 9, "😀", "\ud800", "\n", "\n\n", "\n \n", " ", "\t",
              "\u00a0", "\u3000", "\x1c", "\u2029", "\x85", "\r"]
    texts = ["", " ", "\n", "\n\n", "a", "a\n", "\na", "a a", "a\n\n\na", " \n a \n\n a \n "]
    for case in range(count):
        size = rng.choice([1, 2, 3, 5, 10, 40, 300, 1500])
        chosen = [rng.choice(pieces[: rng.randint(2, len(pieces))]) for _ in range(size)]
        text = rng.choice([" ", "", "\n"]).join(chosen)
        if case % 3 == 0:  # planted repeats of a long phrase, and ties between them
            text = text[:40] * 3 + text + text[-40:] * 3
        texts.append(text)
    return texts


def test_repetition_kernels_equal_the_plain_python_rule():
    for text in _random_texts(7, 800):
        assert _kernel_figures(text, 10) == _reference_figures(text, 10), repr(text[:200])


def test_repetition_kernels_on_real_sentences():
    sentences = [GOOD_DE, "Heute ist Markt.", "Der Zug fährt um acht Uhr ab.", "billige Flüge billige Flüge"]
    for repeats in range(1, 6):
        text = "\n\n".join(sentences * repeats) + "\n" + " ".join(sentences[::-1])
        assert _kernel_figures(text, 10) == _reference_figures(text, 10)


def test_kernel_words_split_where_str_split_does():
    """The words of the kernels against str.split() around every code point (surrogates included)."""
    from occi.corpora import quality
    from occi.corpora.kernels import code_points

    text = "".join("a" + chr(c) for c in range(0x110000)) + "a"
    word_ids, lengths = quality._words(code_points(text))
    assert lengths.tolist() == [len(word) for word in text.split()]


def _reference_quality_figures(text: str):
    from occi.corpora.quality import _PUNCTUATION_STRIP, BULLETS, ELLIPSES

    words = text.split()
    content = [w for w in (w.strip(_PUNCTUATION_STRIP) for w in words) if w]
    lines = text.splitlines()
    return (len(words), len(content), sum(map(len, content)), sum(any(c.isalpha() for c in w) for w in words),
            len(lines), sum(line.lstrip().startswith(BULLETS) for line in lines),
            sum(line.rstrip().endswith(ELLIPSES) for line in lines))


def test_gopher_quality_kernel_equals_the_plain_python_rule():
    import random

    from occi.corpora import quality
    from occi.corpora.kernels import code_points, letters

    rng = random.Random(3)
    pieces = ["der", "und", "Haus", "...", "..", "…", "#", "•", "-", "*", "«", "»", "(x)", "12", "3,5", "ß", "Ωμέγα",
              "e\u0301", "😀", "𝐀", "\ud800", "\n", "\r", "\r\n", "\v", "\x1c", "\u2028", "\x85", " ", "\t", "\u00a0"]
    texts = ["", " ", "\n", "\r\n", "\n\n", "a\r", "…", "...", " ... \n • a\n\t- b …  "] + _random_texts(8, 200)
    for _ in range(400):
        texts.append(rng.choice([" ", "", "\n"]).join(rng.choice(pieces) for _ in range(rng.choice([1, 3, 10, 80]))))
    for text in texts:
        figures = quality._gopher_quality_figures(code_points(text), quality._STRIPPED, quality._BULLET_STARTS, letters())
        assert figures == _reference_quality_figures(text), repr(text[:200])


def test_character_classes_of_the_kernels_on_every_code_point():
    import re
    import sys

    from occi.corpora import quality
    from occi.corpora.kernels import is_space, letters, word_characters

    everything = [chr(c) for c in range(sys.maxunicode + 1)]
    assert [is_space(c) for c in range(sys.maxunicode + 1)] == [c.isspace() for c in everything]
    assert [quality._is_line_break(c) for c in range(sys.maxunicode + 1)] == [len(f"a{c}a".splitlines()) == 2 for c in everything]
    assert letters().tolist() == [c.isalpha() for c in everything]
    word = re.compile(r"\w")
    assert word_characters().tolist() == [word.match(c) is not None for c in everything]
    spaced = " ".join(everything)
    assert [m.group() for m in quality._WORDS.finditer(spaced)] == spaced.split()


def _reference_fineweb_figures(text: str, short_line_length: int):
    from occi.corpora.quality import TERMINAL_PUNCTUATION

    lines = [line for line in text.split("\n") if line.strip()]
    return (len(lines), sum(line.rstrip().endswith(TERMINAL_PUNCTUATION) for line in lines),
            sum(len(line) <= short_line_length for line in lines), _duplicated(lines)[2], len(text.split()))


def test_fineweb_kernel_equals_the_plain_python_rule():
    import random

    from occi.corpora import quality
    from occi.corpora.kernels import code_points

    rng = random.Random(6)
    pieces = ["der", "Satz.", "Ja!", "«", "»", "”", "。", "؟", ")", "…", "12", "\n", "\n\n", " ", "\t", "\u00a0", "\r",
              "\x1c", "😀", "\ud800"]
    texts = ["", "\n", " \n ", "a\n", "\na", "a.\n\na.\n a. "] + _random_texts(9, 200)
    texts += [rng.choice([" ", "", "\n"]).join(rng.choice(pieces) for _ in range(rng.choice([1, 3, 10, 60, 300])))
              for _ in range(400)]
    for text in texts:
        for short in (1, 3, 30):
            figures = quality._fineweb_figures(code_points(text), quality._TERMINAL_PUNCTUATION, short)
            assert figures == _reference_fineweb_figures(text, short), repr(text[:200])


def test_stop_word_kernel_counts_as_python_does():
    """The kernel's count (and where it hands over to Python: Σ, U+0130) against the plain rule on
    random texts of stop words, punctuation, capitals and the code points it cannot lowercase."""
    import random

    from occi import languages
    from occi.corpora import quality
    from occi.corpora.kernels import code_points, lowercase

    def reference(text, stop_words, needed):
        found = 0
        for word in text.split():
            if word.strip(quality._PUNCTUATION_STRIP).lower() in stop_words:
                found += 1
                if found >= needed:
                    break
        return found

    rng = random.Random(5)
    handed_over = 0
    for code in ("de", "el", "pl", "fr"):
        stop_words = languages.get(code).stop_words
        words = sorted(stop_words)[:40]
        pieces = [*words, *(w.upper() for w in words), *(w.title() for w in words), "(", ")", "«", "...", "—",
                  "Haus", "ΣΟΦΙΑ", "ΚΑΙ", "İstanbul", "\u0130", "Σ", "ς", "x" * 70, "\t", "\n", "\u00a0"]
        for _ in range(300):
            text = rng.choice([" ", "", "\n", "-"]).join(rng.choice(pieces) for _ in range(rng.choice([1, 5, 30])))
            needed = rng.choice([0, 1, 2, 3, 100])
            found, resume = quality._stop_words_found(code_points(text), quality._STRIPPED, lowercase(),
                                                      *quality._stop_word_table(code), needed)
            if resume >= 0:
                handed_over += 1
                assert text[resume:].split() == text.split()[len(text[:resume].split()):]
                assert found == reference(text[:resume], stop_words, needed)
            else:
                assert found == min(reference(text, stop_words, needed), max(needed, 0)), repr(text[:200])
    assert handed_over > 50


def test_lowercase_table_is_str_lower_on_every_code_point():
    import sys

    from occi.corpora.kernels import ASK_PYTHON, lowercase

    table = lowercase()
    asked = [c for c in range(sys.maxunicode + 1) if table[c] == ASK_PYTHON]
    assert asked == [0x130, 0x3A3]
    assert all(chr(table[c]) == chr(c).lower() for c in range(sys.maxunicode + 1) if c not in asked)
