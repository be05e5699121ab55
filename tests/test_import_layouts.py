"""`occi import` at TP=2 and PP=2 of the tiny bases of a few families, with megatron's own forward
pass under torchrun (tests/megatron_forward.py) and the export's logits against transformers'. The
TP=1 case of every family and the import's refusals: tests/test_import.py; this half is a file of
its own so that pytest-xdist's --dist loadfile runs the two halves on both workers."""
from __future__ import annotations

import pytest

from test_import import LAYOUT_CASES, bases, check_import_then_export  # noqa: F401 (bases is a fixture)


@pytest.mark.parametrize("kind,layout", LAYOUT_CASES)
def test_import_at_tp2_or_pp2_then_export_gives_back_the_base(bases, kind, layout, tmp_path):  # noqa: F811
    check_import_then_export(bases, kind, layout, tmp_path)
