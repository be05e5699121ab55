"""The language table: complete, consistent, and the source of LID label aliases."""
from occi import languages

EU24 = "bg cs da de el en es et fi fr ga hr hu it lt lv mt nl pl pt ro sk sl sv".split()


def test_table_holds_the_24_eu_languages_plus_four():
    assert sorted(languages.EU_OFFICIAL) == sorted(EU24)
    assert set(languages.LANGUAGES) == set(EU24) | {"ca", "eu", "gl", "no"}


def test_every_language_is_complete():
    for code, lang in languages.LANGUAGES.items():
        assert len(lang.iso639_3) == 3 and lang.script in {"Latn", "Cyrl", "Grek"}
        assert 0 < lang.lid_threshold < 1
        assert len(lang.stop_words) >= 10
        assert all(word == word.lower() and " " not in word for word in lang.stop_words)
        assert code in lang.lid_labels and f"{lang.iso639_3}_{lang.script}" in lang.lid_labels


def test_croatian_accepts_serbo_croatian_labels():
    mapping = languages.label_to_language(["hr", "sl"])
    for label in ("hr", "sh", "bs", "sr", "hrv_Latn", "bos_Latn"):
        assert mapping[label] == "hr"
    assert mapping["slv_Latn"] == "sl"


def test_fineweb2_thresholds_are_the_defaults():
    assert languages.get("bg").lid_threshold == 0.90
    assert languages.get("hr").lid_threshold == 0.467
    assert languages.get("mt").lid_threshold == 0.30


def test_unknown_code_is_a_clear_error():
    import pytest

    from occi.errors import OcciError

    with pytest.raises(OcciError, match="unknown language code 'xx'"):
        languages.get("xx")
