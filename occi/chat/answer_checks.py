"""What R1-style distillation checks on a teacher's output: its reasoning split from its final
answer, the final answer's language, and the final answer against a verifiable one.

Reasoning comes in two shapes: `<think>...</think>` before the answer (DeepSeek-R1, Qwen3, occi's
template), or harmony's channels (gpt-oss): `<|channel|>analysis<|message|>...<|end|>` then
`<|start|>assistant<|channel|>final<|message|>ANSWER`.

The number rule (a prompt row's `answer`, e.g. "42" or 2.5): the final answer passes when its
LAST number equals the expected number numerically (within 1e-9 relative). A number is a run of
digits with an optional sign and optional `.` or `,` separators between digit groups. When every
separator is followed by exactly three digits and all separators are the same character, they
group thousands ("1.000", "1,000,000": the European and English ways); otherwise the last
separator is the decimal mark and earlier ones group thousands ("3,5" = 3.5, "1.000,5" = 1000.5,
"1,000.5" = 1000.5). So "1.234" reads as 1234: write an expected decimal with other than three
decimals, or as a JSON number.
"""
from __future__ import annotations

import math
import re

from occi.chat.budget import THINK_END, THINK_START

HARMONY_FINAL = "<|channel|>final<|message|>"
HARMONY_ANALYSIS = "<|channel|>analysis<|message|>"
HARMONY_END = "<|end|>"

NUMBER = re.compile(r"[-\u2212+]?\d+(?:[.,]\d+)*")

REASONS = ("empty", "language/answer", "verify/no_number", "verify/wrong_number")
"""Every reason a distilled row is dropped for, as stats.json counts them: an empty final answer;
the final answer in another language than the prompt; no number in a final answer that has an
expected one; a last number other than the expected one."""


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning or None, final answer) of a teacher's raw output (special tokens kept)."""
    if HARMONY_FINAL in text:
        head, _, answer = text.rpartition(HARMONY_FINAL)
        thoughts = [part.split(HARMONY_END)[0] for part in head.split(HARMONY_ANALYSIS)[1:]]
        return ("\n".join(t.strip() for t in thoughts).strip() or None), answer
    if THINK_END in text:
        head, _, answer = text.partition(THINK_END)
        return (head.replace(THINK_START, "").strip() or None), answer
    return None, text


def parse_number(text: str) -> float | None:
    """A number written by the rule of the module's docstring, or None when `text` is not one."""
    text = text.strip().replace("\u2212", "-")
    if not NUMBER.fullmatch(text):
        return None
    separators = re.findall(r"[.,]", text)
    groups = re.split(r"[.,]", text)
    if separators and len(set(separators)) == 1 and all(len(g) == 3 for g in groups[1:]):
        return float("".join(groups))
    if not separators:
        return float(text)
    whole, decimals = "".join(groups[:-1]), groups[-1]
    return float(f"{whole}.{decimals}")


def last_number(answer: str) -> float | None:
    """The last number in an answer, or None."""
    found = NUMBER.findall(answer)
    return parse_number(found[-1]) if found else None


def expected_number(value: object, where: str) -> float:
    """A prompt row's `answer` as a number; ValueError naming `where` when it is none."""
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else \
        parse_number(value) if isinstance(value, str) else None
    if number is None or not math.isfinite(number):
        raise ValueError(f"{where}: `answer` must be a number (like 42, 2.5 or \"3,5\"), got {value!r}")
    return number


def verify(answer: str, expected: float) -> str | None:
    """None when the answer's last number equals `expected`, else the drop reason."""
    found = last_number(answer)
    if found is None:
        return "verify/no_number"
    return None if math.isclose(found, expected, rel_tol=1e-9, abs_tol=1e-12) else "verify/wrong_number"


def problem(answer: str, language: str, expected: float | None, langid, min_langid_chars: int,
            check_language: bool = True, check_answers: bool = True) -> str | None:
    """The first reason of REASONS a final answer fails for (in that order), or None."""
    if not answer.strip():
        return "empty"
    if check_language and langid is not None and len(answer.strip()) >= min_langid_chars:
        code, _, _ = langid.predict(answer.replace("\n", " "))
        if code != language:
            return "language/answer"
    if check_answers and expected is not None:
        return verify(answer, expected)
    return None
