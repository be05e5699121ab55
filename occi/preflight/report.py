"""The doctor's findings: one Check per question, a console table, doctor.json."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass
class Check:
    name: str
    """What was checked (short, the table's first column)."""
    status: Status
    """ok; warn (the run works, but not as assumed); fail (the run would break); skip (cannot be
    checked here, `detail` says why)."""
    value: str
    """What was found, in a few words."""
    detail: str = ""
    """More of what was found, or why the check was skipped."""
    fix: str = ""
    """What to do, for warn and fail."""
    data: dict = field(default_factory=dict)
    """Numbers for later tools (occi plan): bandwidths, tokens/s, MFU, seconds."""
    seconds: float | None = None
    """How long the check (the last of a group) took."""


def guarded(name: str, check) -> list[Check]:
    """Runs a check function; a check that crashes is a failed check, not a crashed doctor."""
    try:
        result = check()
    except Exception as err:  # the doctor reports every problem it meets
        return [Check(name, "fail", f"{type(err).__name__}", str(err).splitlines()[0][:300] if str(err) else "",
                      fix="see the detail; this check could not complete on this node")]
    return result if isinstance(result, list) else [result]


def table(checks: list[Check]) -> str:
    marks = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
    width = max([len(c.name) for c in checks] + [5])
    lines = [f"{'check':<{width}}  {'':<4}  result", "-" * (width + 60)]
    for c in checks:
        took = f"  ({c.seconds:.0f} s)" if c.seconds is not None and c.seconds >= 1 else ""
        lines.append(f"{c.name:<{width}}  {marks[c.status]:<4}  {c.value}{took}")
        if c.detail and c.status != "ok":
            lines.append(f"{'':<{width}}        {c.detail}")
        if c.fix and c.status in ("warn", "fail"):
            lines.append(f"{'':<{width}}        -> {c.fix}")
    return "\n".join(lines)


def as_json(checks: list[Check], context: dict) -> dict:
    failed = [c.name for c in checks if c.status == "fail"]
    return {"checked_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **context, "failed": failed,
            "warnings": [c.name for c in checks if c.status == "warn"], "checks": [asdict(c) for c in checks]}
