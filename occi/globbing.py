"""File globs, `**` included, that read each real file once and never follow a symlink loop.

Python's `glob(recursive=True)` follows every link to a folder under `**`: one `self -> .` link
lists each file about forty times (until the OS refuses the path), and two such links grow the
listing without bound. Here a link back to a folder that is already on the path (or above it)
is a loop: it is returned to the caller to report, and not followed. Two paths to the same real
file (a link beside its target) give the file once, under its first path in sorted order.
Otherwise the matching is glob's: `*`, `?`, `[...]`, hidden names only when the pattern names
them, dangling links kept (the readers count them as unreadable).
"""
from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class GlobResult:
    files: list[str] = field(default_factory=list)
    """Matched files (and dangling links), sorted, one path per real file."""
    loops: list[tuple[str, str]] = field(default_factory=list)
    """(link, the folder it leads back to) for every symlink loop met under `**`; not followed."""


def glob_files(pattern: str) -> GlobResult:
    """Every file `pattern` matches (`~` expanded, `**` any number of folders)."""
    pattern = os.path.expanduser(pattern)
    walk = _Walk()
    if not glob.has_magic(pattern):
        matches: list[str] = [pattern] if os.path.lexists(pattern) else []
    else:
        root = os.sep if os.path.isabs(pattern) else ""
        parts = [p for p in pattern.split(os.sep) if p]
        matches = list(walk.match(root, parts))
    seen: set[str] = set()
    for path in sorted(matches):
        is_dangling = os.path.islink(path) and not os.path.exists(path)
        if not (os.path.isfile(path) or is_dangling):
            continue
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            walk.result.files.append(path)
    return walk.result


class _Walk:
    def __init__(self) -> None:
        self.result = GlobResult()
        self.expanded: set[tuple[str, int]] = set()  # (real folder, parts left) already expanded by `**`

    def match(self, folder: str, parts: list[str]) -> Iterator[str]:
        part, rest = parts[0], parts[1:]
        if part == "**":
            while rest and rest[0] == "**":
                rest = rest[1:]
            for sub in self._folders_below(folder, len(rest)):
                if rest:
                    yield from self.match(sub, rest)
                else:
                    yield from (os.path.join(sub, name) for name in _visible(sub))
            return
        if glob.has_magic(part):
            names = [n for n in _names(folder) if fnmatch.fnmatchcase(n, part)
                     and (part.startswith(".") or not n.startswith("."))]
        else:
            names = [part] if os.path.lexists(os.path.join(folder, part)) else []
        for name in names:
            path = os.path.join(folder, name)
            if not rest:
                yield path
            elif os.path.isdir(path):
                yield from self.match(path, rest)

    def _folders_below(self, start: str, parts_left: int) -> Iterator[str]:
        """`start` and every visible folder below it, depth first in sorted order, each real
        folder once; a link to a folder on the current path (or above it) is recorded as a loop."""
        real = os.path.realpath(start or ".")
        if (real, parts_left) in self.expanded:
            return
        self.expanded.add((real, parts_left))
        yield from self._descend(start, [real], parts_left)

    def _descend(self, folder: str, chain: list[str], parts_left: int) -> Iterator[str]:
        yield folder
        for name in _visible(folder):
            path = os.path.join(folder, name)
            if not os.path.isdir(path):
                continue
            real = os.path.realpath(path)
            if real in chain or chain[-1].startswith(real.rstrip(os.sep) + os.sep):
                self.result.loops.append((path, real))
                continue
            if (real, parts_left) in self.expanded:
                continue  # a second path to a folder already listed
            self.expanded.add((real, parts_left))
            yield from self._descend(path, [*chain, real], parts_left)


def _names(folder: str) -> list[str]:
    try:
        return sorted(os.listdir(folder or "."))
    except OSError:
        return []


def _visible(folder: str) -> list[str]:
    return [n for n in _names(folder) if not n.startswith(".")]
