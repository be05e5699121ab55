"""Opening a local input file as bytes, whatever compression it is in.

The compression is read from the file's first bytes, not its name: a file called `.gz` that
holds plain JSONL is read as plain JSONL. Every decompressor here raises `TruncatedInput` (an
EOFError) when the file ends inside a compressed stream, so that a file cut short is reported
as `truncated_file` and never read silently as fewer documents.
"""
from __future__ import annotations

import bz2
import gzip
import io
from typing import BinaryIO

import zstandard

_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2"}
COMPRESSED_SUFFIXES = (".gz", ".zst", ".bz2")
"""Names under which compressed files are expected (a file is opened by its content)."""
_CHUNK = 1 << 16


class TruncatedInput(EOFError):
    """The file ended inside a compressed stream."""


def compression(path: str) -> str | None:
    """"gzip", "zstd", "bzip2", or None for uncompressed content."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_binary(path: str) -> BinaryIO:
    """A buffered binary reader of the file's decompressed content."""
    kind = compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "zstd":
        return io.BufferedReader(_ZstdReader(open(path, "rb")), buffer_size=_CHUNK)
    return open(path, "rb")


class _ZstdReader(io.RawIOBase):
    """Decompresses every zstd frame of a file in turn, and raises TruncatedInput when the file
    ends inside a frame (`zstandard`'s stream reader returns what it has and reports nothing)."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._frame = None  # the decompressor of the frame being read; None between frames
        self._pending = b""  # decompressed bytes not yet returned
        self._input = b""  # compressed bytes not yet given to a decompressor
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and not self._finished:
            self._fill()
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _fill(self) -> None:
        if not self._input:
            self._input = self._raw.read(_CHUNK)
            if not self._input:
                if self._frame is not None:
                    raise TruncatedInput("the zstd stream ended inside a frame (file cut short?)")
                self._finished = True
                return
        if self._frame is None:
            self._frame = self._new()
        data, self._input = self._input, b""
        self._pending += self._frame.decompress(data)
        if self._frame.eof:  # the frame is complete; what follows starts another one
            self._input = self._frame.unused_data
            self._frame = None

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
