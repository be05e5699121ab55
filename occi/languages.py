"""The one table of languages occi supports; everything language-specific derives from it.

The 24 official languages of the European Union plus Catalan, Basque, Galician and Norwegian.
Default language-ID thresholds are FineWeb-2's published per-language GlotLID thresholds
(Penedo et al., 2025); languages FineWeb-2 does not list get 0.65, datatrove's default for
lid.176. Stop words are the most frequent function words of each language, used by the Gopher
quality filter ("at least two stop words") in place of its English list.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from occi.errors import OcciError


@dataclass(frozen=True)
class Language:
    code: str
    """ISO 639-1 code, the name occi uses everywhere (config, folders, reports)."""
    iso639_3: str
    """ISO 639-3 code (used by FineWeb-2, GlotLID, lm-eval task names)."""
    script: str
    """ISO 15924 script code."""
    name: str
    """English name."""
    lid_threshold: float
    """Default minimum language-ID score for a document to count as this language."""
    stop_words: frozenset[str]
    """Frequent function words, lower case, as split by occi's word splitter."""
    extra_lid_labels: tuple[str, ...] = ()
    """Labels besides the ISO codes that language-ID models use for this language."""
    eu_official: bool = True
    """An official language of the European Union."""
    glotlid: str = ""
    """The GlotLID / FineWeb-2 label (default <iso639_3>_<script>; Estonian is ekk_Latn)."""
    lid_labels: frozenset[str] = field(init=False)
    """Every model label that counts as this language: the 639-1 code (lid.176), the
    639-3 code with script (GlotLID, OpenLID), the bare 639-3 codes (heliport) and the extra
    labels."""

    def __post_init__(self) -> None:
        if not self.glotlid:
            object.__setattr__(self, "glotlid", f"{self.iso639_3}_{self.script}")
        labels = {self.code, self.glotlid, f"{self.iso639_3}_{self.script}", *self.extra_lid_labels}
        labels |= {self.iso639_3} | {label.split("_")[0] for label in labels if "_" in label}  # heliport
        object.__setattr__(self, "lid_labels", frozenset(labels))


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TABLE = [
    Language("bg", "bul", "Cyrl", "Bulgarian", 0.90, _words("и в на е да се за от с че не по са това как но ще")),
    Language("cs", "ces", "Latn", "Czech", 0.88, _words("a se v na je že to s z do o k ve jsou by ale jak pro")),
    Language("da", "dan", "Latn", "Danish", 0.30, _words("og i at det er en til på af for med den de ikke som har et")),
    Language("de", "deu", "Latn", "German", 0.821,
             _words("der die und in den von zu das mit sich des auf für ist im dem nicht ein eine es")),
    Language("el", "ell", "Grek", "Greek", 0.826,
             _words("και το να η της του σε με τα για που ο την των είναι στο στην από θα")),
    Language("en", "eng", "Latn", "English", 0.65, _words("the be to of and that have with a in is it for")),
    Language("es", "spa", "Latn", "Spanish", 0.84,
             _words("de la que el en y a los se del las un por con no una su para es")),
    Language("et", "est", "Latn", "Estonian", 0.638,
             _words("ja on ei et see ta oli mis ka kui aga nii selle või mida seda"), glotlid="ekk_Latn"),
    Language("fi", "fin", "Latn", "Finnish", 0.764,
             _words("ja on ei että se oli hän mutta kun niin myös tai ovat joka ole jos")),
    Language("fr", "fra", "Latn", "French", 0.824,
             _words("de la le et les des en un du une que est pour qui dans a par pas sur au")),
    Language("ga", "gle", "Latn", "Irish", 0.30,
             _words("an na agus ar is i a le go sé ag ní do sin bhí tá atá seo leis")),
    Language("hr", "hrv", "Latn", "Croatian", 0.467,
             _words("i je u se na da za su od s a o što ne kao iz koji ali"),
             ("sh", "bs", "sr", "bos_Latn", "srp_Latn", "hbs_Latn")),
    Language("hu", "hun", "Latn", "Hungarian", 0.744,
             _words("a az és hogy nem is egy van meg de ez el már mint csak volt")),
    Language("it", "ita", "Latn", "Italian", 0.817,
             _words("di e il la che in a per un è del non le della una con i si sono")),
    Language("lt", "lit", "Latn", "Lithuanian", 0.699,
             _words("ir kad yra į su o bet tai iš kaip ar jo ne buvo jis mes prie")),
    Language("lv", "lav", "Latn", "Latvian", 0.30,
             _words("un ir ka uz ar no par bet kā lai vai tas arī to ne bija pie"), glotlid="lvs_Latn"),
    Language("mt", "mlt", "Latn", "Maltese", 0.30,
             _words("il u ta li tal fil ma minn għal huwa hija jew kien dan din biex mill lil kif fuq")),
    Language("nl", "nld", "Latn", "Dutch", 0.689,
             _words("de en van het een in is dat op te zijn met voor niet die aan er ook als")),
    Language("pl", "pol", "Latn", "Polish", 0.689,
             _words("i w nie się na z do że to jest o a jak ale po co tak od przez")),
    Language("pt", "por", "Latn", "Portuguese", 0.799,
             _words("de a o que e do da em um para é com não uma os no se na por")),
    Language("ro", "ron", "Latn", "Romanian", 0.822,
             _words("și de în a la că cu nu se pe o un din este mai pentru care sunt")),
    Language("sk", "slk", "Latn", "Slovak", 0.667,
             _words("a v sa na je že to s z do o k so ako ale aj pre sú by")),
    Language("sl", "slv", "Latn", "Slovenian", 0.60,
             _words("in je v se na da za z so pa ki ne s tudi bi od kot to")),
    Language("sv", "swe", "Latn", "Swedish", 0.629,
             _words("och i att det som en på är av för med till den har de inte om ett")),
    Language("ca", "cat", "Latn", "Catalan", 0.65,
             _words("de la i el que a en les per un una del amb és no es els al"), eu_official=False),
    Language("eu", "eus", "Latn", "Basque", 0.65,
             _words("eta da ez ere du dira zen bat hori baina edo izan dute zuen hau oso gero baino"),
             eu_official=False),
    Language("gl", "glg", "Latn", "Galician", 0.65,
             _words("de a o e que en do da un unha non os as para con é no na se"), eu_official=False),
    Language("no", "nor", "Latn", "Norwegian", 0.65,
             _words("og i det er på som en til av for med at den ikke har de et om"),
             ("nb", "nn", "nno_Latn"), eu_official=False, glotlid="nob_Latn"),
]

LANGUAGES: dict[str, Language] = {lang.code: lang for lang in _TABLE}
"""Every supported language by ISO 639-1 code, in the table's order."""

EU_OFFICIAL: tuple[str, ...] = tuple(code for code, lang in LANGUAGES.items() if lang.eu_official)
"""The 24 official languages of the European Union."""


def get(code: str) -> Language:
    """The language with this ISO 639-1 code, or a clear error listing the known codes."""
    try:
        return LANGUAGES[code]
    except KeyError:
        raise OcciError(
            f"unknown language code {code!r}: expected an ISO 639-1 code from occi/languages.py "
            f"({', '.join(LANGUAGES)})"
        ) from None


def label_to_language(codes: list[str]) -> dict[str, str]:
    """Maps every language-ID label that counts as one of `codes` to that language's code."""
    mapping: dict[str, str] = {}
    for code in codes:
        for label in get(code).lid_labels:
            mapping[label] = code
    return mapping


# Which lm-eval 0.4.13 task families exist for which language (checked against lm-eval's task
# index by tests/test_coverage.py). English uses the original benchmarks. Where two upstream
# translations of one benchmark exist, the first listed wins (Okapi before the newer ones).
_OKAPI = frozenset("da de es fr hr hu it nl pt ro sk sv ca eu".split())
_ARC_MT = {"el": "el", "fi": "fi", "pl": "pl", "no": "nb"}  # LumiOpen's arc_challenge_mt_*
_GLOBAL_MMLU = frozenset("cs el lt pl".split())  # Okapi's m_mmlu covers the others
_TRUTHFULQA = _OKAPI | {"gl"}
_XNLI = frozenset("bg de el en es fr ca eu gl".split())
_XCOPA = frozenset("et it eu".split())
_XSTORYCLOZE = frozenset("en es ca eu gl".split())
_INCLUDE = frozenset("bg de el es et fi fr hr hu it lt nl pl pt eu".split())
_BELEBELE_CODE = {"et": "est_Latn", "ga": None}  # Belebele has no Irish; its Estonian is est_Latn
# Global PIQA's culturally specific (non-parallel) half; the variant chosen where it has several
_GLOBAL_PIQA = {"fr": "fra_latn_fran", "pt": "por_latn_port", "es": "spa_latn_spai", "et": "ekk_latn",
                "no": "nob_latn", "lv": None, "mt": None, "ga": None}
_MULTIBLIMP = {"hr": "hbs", "et": "est", "lv": "lav", "no": None, "mt": None}
_MMMLU = {"de": "de_de", "es": "es_la", "fr": "fr_fr", "it": "it_it", "pt": "pt_br"}
_MMLU_PROX = frozenset("cs de en es fr hu it pt".split())
_PAWS = frozenset("de en es fr ca eu gl".split())
_LAMBADA = {"de": "lambada_openai_mt_de", "en": "lambada_openai", "es": "lambada_openai_mt_es",
            "fr": "lambada_openai_mt_fr", "it": "lambada_openai_mt_it",
            "nl": "lambada_openai_mt_stablelm_nl", "pt": "lambada_openai_mt_stablelm_pt"}
# English -> language; lm-eval's FLORES pairs read facebook/flores, a script dataset (see
# eval/coverage.md), so only the WMT pairs are listed; XWinograd (Muennighoff/xwinograd) is left
# out for the same reason
_TRANSLATION = {"de": "wmt16-en-de", "fr": "wmt14-en-fr", "ro": "wmt16-en-ro"}
# OpenGPT-X EU20 (eval/tasks/occi_eu20): 20 languages; its Portuguese is European Portuguese
EU20 = frozenset("bg cs da de el es et fi fr hu it lt lv nl pl pt ro sk sl sv".split())
# SIB-200 (eval/tasks/occi_sib200) follows FLORES-200's codes: all 28 languages, Estonian as est_Latn
_SIB200_CODE = {"et": "est_Latn"}

BENCHMARKS = {
    "arc": ("ARC-Challenge", 25, "acc_norm"),
    "hellaswag": ("HellaSwag", 10, "acc_norm"),
    "mmlu": ("MMLU", 5, "acc"),
    "truthfulqa": ("TruthfulQA", 0, "acc"),
    "belebele": ("Belebele", 5, "acc_norm"),
    "xnli": ("XNLI", 0, "acc"),
    "xcopa": ("XCOPA", 0, "acc"),
    "xstorycloze": ("XStoryCloze", 0, "acc"),
    "include": ("INCLUDE", 0, "acc"),
    "global_piqa": ("Global PIQA", 0, "acc_norm"),
    "multiblimp": ("MultiBLiMP", 0, "acc"),
    "mmmlu": ("MMMLU", 0, "acc"),
    "mmlu_prox": ("MMLU-ProX", 5, "exact_match"),
    "paws": ("PAWS-X", 0, "acc"),
    "lambada": ("LAMBADA", 0, "acc"),
    "translation": ("WMT en->xx", 0, "bleu"),
    "arc_eu20": ("EU20-ARC", 25, "acc_norm"),
    "hellaswag_eu20": ("EU20-HellaSwag", 10, "acc_norm"),
    "mmlu_eu20": ("EU20-MMLU", 5, "acc"),
    "truthfulqa_eu20": ("EU20-TruthfulQA", 0, "acc"),
    "gsm8k_eu20": ("EU20-GSM8K", 5, "exact_match"),
    "sib200": ("SIB-200", 0, "acc_norm"),
}
"""family -> (display name, few-shot examples, metric): the benchmarks of the European LLM
leaderboards and the other upstream lm-eval families with European languages, then the published
benchmarks that lm-eval lacks and occi ships as task folders: OpenGPT-X EU20 (eval/tasks/occi_eu20)
and SIB-200 (eval/tasks/occi_sib200)."""

METRIC_FILTERS = {"mmlu_prox": "custom-extract", "gsm8k_eu20": "flexible-extract"}
"""family -> the lm-eval filter its headline metric is read under (others: none)."""

OCCI_FAMILIES = frozenset(f for f in BENCHMARKS if f.endswith("_eu20") or f == "sib200")
"""Families whose task files occi ships (eval/tasks/), not upstream lm-eval's; their benchmarks are
published by others (none of them is occi's own question set)."""


def sib200_code(code: str) -> str:
    """The language as SIB-200 (FLORES-200) names its data folder: deu_Latn, est_Latn, nob_Latn, ..."""
    return _SIB200_CODE.get(code, get(code).glotlid)


def lm_eval_tasks(code: str) -> dict[str, str]:
    """family -> lm-eval task name, for the families that exist in this language."""
    lang = get(code)
    tasks: dict[str, str] = {}
    iso = lang.iso639_3
    if code == "en":
        tasks.update(arc="arc_challenge", hellaswag="hellaswag", mmlu="mmlu", truthfulqa="truthfulqa_mc2")
    if code in _OKAPI:
        tasks.update(arc=f"arc_{code}", hellaswag=f"hellaswag_{code}", mmlu=f"m_mmlu_{code}")
    elif code in _GLOBAL_MMLU:
        tasks["mmlu"] = f"global_mmlu_full_{code}"
    if code in _ARC_MT:
        tasks["arc"] = f"arc_challenge_mt_{_ARC_MT[code]}"
    if code == "no":
        tasks["mmlu"] = "m_mmlu_nb"
    if code in _TRUTHFULQA:
        tasks["truthfulqa"] = f"truthfulqa_{code}_mc2"
    belebele = _BELEBELE_CODE.get(code, lang.glotlid)
    if belebele:
        tasks["belebele"] = f"belebele_{belebele}"
    for family, members in (("xnli", _XNLI), ("xcopa", _XCOPA), ("xstorycloze", _XSTORYCLOZE)):
        if code in members:
            tasks[family] = f"{family}_{code}"
    if code in _INCLUDE:
        tasks["include"] = f"include_base_44_{lang.name.lower()}"
    piqa = _GLOBAL_PIQA.get(code, f"{iso}_{lang.script.lower()}")
    if piqa:
        tasks["global_piqa"] = f"global_piqa_nonparallel_cloze_{piqa}"
    blimp = _MULTIBLIMP.get(code, iso)
    if blimp:
        tasks["multiblimp"] = f"multiblimp_{blimp}"
    if code in _MMMLU:
        tasks["mmmlu"] = f"mmmlu_{_MMMLU[code]}"
    if code in _MMLU_PROX:
        tasks["mmlu_prox"] = f"mmlu_prox_{code}"
    if code in _PAWS:
        tasks["paws"] = f"paws_{code}"
    if code in _LAMBADA:
        tasks["lambada"] = _LAMBADA[code]
    if code in _TRANSLATION:
        tasks["translation"] = _TRANSLATION[code]
    if code in EU20:
        for family in ("arc", "hellaswag", "mmlu", "truthfulqa", "gsm8k"):
            tasks[f"{family}_eu20"] = f"{family}_eu20_{code}"
    tasks["sib200"] = f"sib200_{code}"
    return {family: tasks[family] for family in BENCHMARKS if family in tasks}
