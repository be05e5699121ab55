"""Range checks for numeric settings, shared by every config class and the command line.

A config class lists its numeric fields with their allowed range and calls `check(self, rules)`
in `__post_init__`; the first value out of range becomes one ValueError (the config loader
turns it into an OcciError naming the file and key). `argument(rule)` is the same check as an
argparse `type=`. NaN and infinities are out of every range.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Range:
    low: float | None = None
    """Smallest allowed value (None: no lower bound)."""
    high: float | None = None
    """Largest allowed value (None: no upper bound)."""
    low_open: bool = False
    """The lower bound itself is not allowed (a value must be above it)."""
    high_open: bool = False
    """The upper bound itself is not allowed (a value must be below it)."""

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        low = None if self.low is None else f"{'above' if self.low_open else 'at least'} {_number(self.low)}"
        high = None if self.high is None else f"{'below' if self.high_open else 'at most'} {_number(self.high)}"
        if low and high:
            if not self.low_open and not self.high_open:
                return f"a number between {_number(self.low)} and {_number(self.high)}"
            return f"a number {low} and {high}"
        if low or high:
            return low or high if not (self.low_open or self.high_open) else f"a number {low or high}"
        return "a finite number"


def at_least(low: float) -> Range:
    return Range(low)


def above(low: float) -> Range:
    return Range(low, low_open=True)


def between(low: float, high: float) -> Range:
    return Range(low, high)


SHARE = Range(0.0, 1.0)
"""A share or probability: 0 to 1."""
POSITIVE = above(0)
"""Strictly above zero (learning rates, epsilons, standard deviations)."""
SEQ_LENGTH = between(1, 1 << 20)
"""A sequence length in tokens: up to 1,048,576 (2^20), above any context trained today; more is a typo."""
DPO_BETA = Range(0.0, 100.0, low_open=True)
"""Preference strength of DPO/SimPO: above 0; papers use 0.01-10, beyond 100 the sigmoid saturates on one token."""
MERGE_WEIGHT = Range(0.0, 1e6)
"""A model's weight in `occi merge`: 0 or more (linear and ties divide the weights by their sum)."""
MERGE_DENSITY = Range(0.0, 1.0, low_open=True)
"""TIES: the share of a task vector's entries kept, above 0 and at most 1 (the paper keeps 20%)."""
MERGE_CHECKPOINTS = between(1, 1000)
"""Checkpoints averaged by `merge.checkpoints.last`: 1 to 1000 (each is exported first)."""


def check(obj: Any, rules: dict[str, Range], keys: dict[str, Range] | None = None) -> None:
    """Raises ValueError for the first field of `obj` (or value of a mapping field, or key in
    `keys`) outside its range; None values are not checked (they mean "not set")."""
    for name, rule in rules.items():
        value = getattr(obj, name)
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for key, item in items:
            if item is not None and item not in rule:
                label = name if key is None else f"{name}.{key}"
                raise ValueError(f"{label}: expected {rule.describe()}, got {item!r}")
    for name, rule in (keys or {}).items():
        for key in getattr(obj, name):
            if key not in rule:
                raise ValueError(f"{name}: key {key!r} is not {rule.describe()}")


def check_order(obj: Any, low_name: str, high_name: str) -> None:
    """Raises ValueError when the `low_name` setting is above the `high_name` one."""
    low, high = getattr(obj, low_name), getattr(obj, high_name)
    if low is not None and high is not None and low > high:
        raise ValueError(f"{low_name} {low} is above {high_name} {high}")


def argument(rule: Range, kind: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse `type=` that parses with `kind` and checks the range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if value not in rule:
            raise argparse.ArgumentTypeError(f"expected {rule.describe()}, got {text}")
        return value

    return parse


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
