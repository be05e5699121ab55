"""A base's weights checked before any rank starts: every tensor the architecture needs is in the
shard its index names, has the shape config.json gives it, and holds only finite values.

The layout check reads the shards' headers only; the value check reads every needed tensor once,
shard by shard and in slices of at most VALUE_CHUNK values, so that a 7B base is checked in about
a hundred MB of memory, not its whole weight. The slices are the shard's own pages, memory-mapped
(no copy), and let go of after each slice. NaN or infinity in a base refuses the import rather
than warning: megatron's forward pass spreads one such value to the loss at the first step, so
the run would only fail later, further from the cause (a damaged download, a broken conversion).
"""
from __future__ import annotations

import json
import math
import mmap
import struct
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open
from tqdm import tqdm

from occi.errors import OcciError

VALUE_CHUNK = 1 << 22
"""Values read at once by the finiteness check (4 Mi: 8 MiB of bf16). Reading a slice costs a few
times its size in temporaries: measured on a 2.1 GB bf16 Llama (bench/import's), the check adds
0.11 GB to the process's peak at 4 Mi, 0.33 GB at 16 Mi."""


_FLOATS = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
           "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}
"""safetensors dtype names of the floating-point tensors the mapped check reads."""
_NOT_FLOATS = frozenset({"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"})
"""safetensors dtype names of tensors that cannot hold NaN or infinity."""


def check_layout(folder: Path, weight_map: dict[str, str], expected: dict[str, tuple[int, ...]]) -> None:
    """Every expected tensor is in the file the index (or the single file) names, with its shape."""
    for path, names in _by_file(folder, weight_map, expected):
        with opened(path) as handle:
            present = set(handle.keys())
            for name in names:
                if name not in present:
                    raise OcciError(f"{path}: tensor {name} is not in this file, though "
                                    f"model.safetensors.index.json places it here (expected shape "
                                    f"{list(expected[name])}); download the file again or fix the index")
                shape = tuple(handle.get_slice(name).get_shape())
                if shape != expected[name]:
                    raise OcciError(f"{path}: tensor {name} has shape {list(shape)}, expected "
                                    f"{list(expected[name])} from config.json; the weights and config.json "
                                    "are of different models")


def check_values(folder: Path, weight_map: dict[str, str], names: list[str]) -> None:
    """Every value of the named tensors is finite; else one line naming the first tensor with NaN
    or infinity, its file and the counts."""
    bad: list[tuple[Path, str, int, int, int]] = []
    groups = _by_file(folder, weight_map, names)
    with tqdm(total=sum(len(n) for _, n in groups), desc="import: checking the base's values", unit="tensor",
              disable=None) as bar:
        for path, group in groups:
            for name, (nan, inf, count) in _non_finite_mapped(path, group):
                if nan or inf:
                    bad.append((path, name, nan, inf, count))
                bar.update()
    if bad:
        path, name, nan, inf, count = bad[0]
        more = f" (and {len(bad) - 1} more tensor(s))" if len(bad) > 1 else ""
        raise OcciError(f"{path}: tensor {name} holds {nan:,} NaN and {inf:,} infinite value(s) of {count:,}{more}; "
                        "a model trained from it has a NaN loss from the first step: download the base again "
                        "(check the files' sha256) or import another revision")


def _non_finite_mapped(path: Path, names: list[str]) -> Iterator[tuple[str, tuple[int, int, int]]]:
    """(name, (NaN count, infinity count, values)) of each named tensor of one shard, read from the
    memory-mapped file in slices of VALUE_CHUNK values, each slice's pages let go after it (they
    would otherwise count towards this process's memory until the file is closed). A dtype this
    reader does not know goes through safetensors (`_non_finite`)."""
    try:
        with open(path, "rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            header = json.loads(file.read(length))
    except (OSError, ValueError, struct.error) as err:
        raise OcciError(f"{path}: not a readable safetensors file ({err})") from None
    start_of_data = 8 + length
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) as mapped:
        for name in names:
            info = header[name]
            count = math.prod(info["shape"])
            dtype = _FLOATS.get(info["dtype"])
            if info["dtype"] in _NOT_FLOATS or not count:
                yield name, (0, 0, count)
                continue
            if dtype is None:
                yield name, _non_finite(path, name)
                continue
            begin, end = (start_of_data + offset for offset in info["data_offsets"])
            step = VALUE_CHUNK * dtype.itemsize
            nan = inf = 0
            for at in range(begin, end, step):
                stop = min(end, at + step)
                # a private mapping is writable, so torch takes it without a read-only warning;
                # nothing writes to it
                values = torch.frombuffer(mapped, dtype=dtype, count=(stop - at) // dtype.itemsize, offset=at)
                n, i, _ = _count(values)
                del values
                nan, inf = nan + n, inf + i
                if hasattr(mapped, "madvise"):
                    page = at - at % mmap.PAGESIZE
                    mapped.madvise(mmap.MADV_DONTNEED, page, stop - page)
            yield name, (nan, inf, count)


def _non_finite(path: Path, name: str) -> tuple[int, int, int]:
    """(NaN count, infinity count, values) of one tensor, read in slices along its first axis, the
    file opened for each slice so that the pages read are let go after it."""
    with opened(path) as handle:
        shape = list(handle.get_slice(name).get_shape())
        if not shape:
            return _count(handle.get_tensor(name))
    rows = max(1, VALUE_CHUNK // max(1, math.prod(shape[1:])))
    nan = inf = 0
    for start in range(0, shape[0], rows):
        with opened(path) as handle:
            n, i, _ = _count(handle.get_slice(name)[start:start + rows])
        nan, inf = nan + n, inf + i
    return nan, inf, math.prod(shape)


def _count(values: torch.Tensor) -> tuple[int, int, int]:
    if not values.is_floating_point() or not values.numel():
        return 0, 0, values.numel()
    if values.element_size() == 1:  # float8: isnan/isinf/aminmax need a wider type on CPU
        values = values.float()
    # one reduction without temporaries, several times cheaper than counting (bf16's isfinite
    # makes a mask and its sum an int64 copy): the extremes are finite only if every value is,
    # since NaN propagates to both and an infinity is one of them; count only when they are not
    low, high = torch.aminmax(values)
    if math.isfinite(low) and math.isfinite(high):
        return 0, 0, values.numel()
    non_finite = values.numel() - int(torch.isfinite(values).sum())
    nan = int(torch.isnan(values).sum()) if non_finite else 0
    return nan, non_finite - nan, values.numel()


def _by_file(folder: Path, weight_map: dict[str, str], names) -> list[tuple[Path, list[str]]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        groups[weight_map[name]].append(name)
    return [(Path(folder) / file, groups[file]) for file in sorted(groups)]


@contextmanager
def opened(path: Path) -> Iterator:
    """A safetensors shard opened for reading; a damaged file is one line naming it."""
    try:
        handle = safe_open(path, framework="pt")
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise OcciError(f"{path}: not a readable safetensors file ({err})") from None
    with handle:
        yield handle
