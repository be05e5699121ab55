"""Writes the language settings of occi's table as the JSON that datatrove_pipeline.py reads.

    python3 bench/corpora/export_languages.py [CODES...] > /tmp/occi-bench/languages.json

Without CODES: every language of occi/languages.py. The JSON holds, per language, the language-ID
threshold and the Gopher stop words, and the model labels that count as another language
("aliases": sh/bs/sr -> hr, nb/nn -> no), so that both sides use the same numbers. Only
occi/languages.py is imported (standard library only): any Python 3.11 runs this.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from occi import languages  # noqa: E402


def settings(codes: list[str]) -> dict:
    chosen = [languages.get(code) for code in codes]
    aliases = {}
    for lang in chosen:
        for label in sorted(lang.lid_labels):
            if "_" not in label and label != lang.code:  # lid.176 labels are bare ISO codes
                aliases[label] = lang.code
    return {
        "languages": {
            lang.code: {"threshold": lang.lid_threshold, "stop_words": sorted(lang.stop_words)} for lang in chosen
        },
        "aliases": aliases,
    }


if __name__ == "__main__":
    json.dump(settings(sys.argv[1:] or list(languages.LANGUAGES)), sys.stdout, ensure_ascii=False, indent=1)
    print()
