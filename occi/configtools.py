"""Turning YAML mappings into typed dataclasses, strictly.

`build(cls, data, where)` checks every key against the dataclass's fields and every value
against the field's type annotation, and raises one OcciError naming the file, the key path
and what was expected: unknown keys (with a suggestion), wrong types, missing required keys,
and whatever a dataclass's `__post_init__` rejects (a ValueError there becomes an OcciError at
the dataclass's location).
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from occi.errors import OcciError

_EXPONENT = re.compile(r"[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+")
"""1e11 and 5e-4: numbers to a person, strings to YAML 1.1 (PyYAML) without a decimal point."""


def load_yaml(path: Path) -> Any:
    """Parses a YAML file, turning unreadable files and syntax errors into one-line errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OcciError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise OcciError(f"{path}: cannot read: {err}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except DuplicateKeyError as err:
        raise OcciError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise OcciError(f"{path}:{line}: invalid YAML: {problem}") from None


class DuplicateKeyError(ValueError):
    """A mapping in a YAML file writes the same key twice."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error: plain
    PyYAML keeps the last value silently, so a forgotten earlier line would win or lose by position."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` may override merged keys on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in first_line
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if repeated:
                    raise DuplicateKeyError(f"line {key_node.start_mark.line + 1}: key {key!r} is written twice "
                                            f"(first on line {first_line[key] + 1}); keep one of them")
                first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def build(cls: type, data: Any, where: str) -> Any:
    """An instance of dataclass `cls` from mapping `data`; `where` is "file: key.path"."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise OcciError(f"{where}: expected a mapping of {cls.__name__} fields, got {_describe(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise OcciError(f"{_join(where, key)}: unknown key{hint}; allowed: {', '.join(fields)}")
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = convert(hints[name], data[name], _join(where, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise OcciError(f"{_join(where, name)}: required key is missing")
    try:
        return cls(**values)
    except (ValueError, OcciError) as err:  # OcciError: a check in __post_init__ that knows no file (a language code)
        raise OcciError(f"{where.rstrip(': ')}: {err}") from None


def convert(hint: Any, value: Any, where: str) -> Any:
    """`value` checked (and, for dataclasses and lists, converted) against type `hint`."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(option, value, where)
            except OcciError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise OcciError(f"{where}: expected {_type_name(hint)}, got {_describe(value)}")
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(repr(v) for v in get_args(hint))
            raise OcciError(f"{where}: expected one of {allowed}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise OcciError(f"{where}: expected a list, got {_describe(value)}")
        (item_hint, *_) = get_args(hint) or (Any,)
        return [convert(item_hint, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise OcciError(f"{where}: expected a mapping, got {_describe(value)}")
        key_hint, value_hint = get_args(hint) or (Any, Any)
        return {
            convert(key_hint, key, where): convert(value_hint, item, _join(where, key))
            for key, item in value.items()
        }
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build(hint, value, where)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise OcciError(f"{where}: expected {hint.__name__}, got {_describe(value)}")
    if isinstance(hint, type) and not isinstance(value, hint):
        hint_text = ""
        if hint in (int, float) and isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
            hint_text = " (YAML reads an exponent without a decimal point as text: write the number out)"
        raise OcciError(f"{where}: expected {_type_name(hint)}, got {_describe(value)}{hint_text}")
    return value


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain dicts and lists, for writing the resolved config."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_plain(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_plain(item) for key, item in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if not where.endswith(": ") else f"{where}{key}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _type_name(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(h) for h in get_args(hint) if h is not type(None))
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} fields"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))

