"""This folder's data (relative to the folder, wherever it lies) and its scoring by rule
(occi/eval/ifeval_rules.py), so plain `lm_eval --include_path` scores it as `occi eval` does."""
from functools import lru_cache
from pathlib import Path

import datasets

from occi.eval.ifeval_rules import instruction_level, score


def load(data_files: dict, **_):
    here = Path(__file__).resolve().parent
    return datasets.load_dataset("json", data_files={split: str(here / path) for split, path in data_files.items()})


@lru_cache(maxsize=1)
def _identifier():
    from occi import languages
    from occi.corpora.langid import LanguageIdentifier, default_model_path

    return LanguageIdentifier(default_model_path(), list(languages.LANGUAGES))


def identify(text: str):
    return _identifier().predict(text)[0]


def process_results(doc: dict, results: list) -> dict:
    return score(doc, results[0], identify)


def agg_inst_level_acc(items: list) -> float:
    return instruction_level(items)
