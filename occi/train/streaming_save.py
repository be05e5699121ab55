"""A megatron dist_checkpointing checkpoint written tensor by tensor, each tensor made when written.

`dist_checkpointing.save` with megatron's own writer needs every tensor in memory first (and
copies the views among them), so writing a model takes twice its size. The import instead builds
the GPTModel on the meta device (shapes only) and saves its sharded state dict with this strategy:
torch.distributed.checkpoint's FileSystemWriter with one thread asks the planner for each tensor
just before writing it, and the planner makes it then, from the tensor's key and its place in the
global tensor (the offsets and sizes the sharded state dict gives it). Peak memory is one tensor
and what it is made from, whatever the model's size. The files are the torch_dist format
megatron's own writer produces (the same `.metadata`, `metadata.json` and `common.pt`), so
megatron-core and Megatron-LM load them as usual.

The file is handed to the disk while it is written (WRITEBACK_BYTES at a time): the writer's
final fsync (kept: the checkpoint is renamed into place after it) then has little left to wait
for, instead of every byte of the checkpoint at once.
"""
from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.filesystem import FileSystem
from torch.distributed.checkpoint.planner import WriteItemType

WRITEBACK_BYTES = 64 << 20
"""Bytes written between two requests that the kernel write the file's dirty pages out (and drop
the ones already on disk from the page cache)."""

MakeTensor = Callable[[str, tuple[int, ...], tuple[int, ...], torch.dtype], torch.Tensor]
"""(sharded key, offsets in the global tensor, sizes, dtype) -> that part of the tensor."""


def save(sharded_state_dict: dict, checkpoint_dir: Path, make: MakeTensor) -> None:
    """dist_checkpointing.save of a meta-device sharded state dict, every tensor from `make`."""
    from megatron.core import dist_checkpointing  # loads megatron: only when used

    dist_checkpointing.save(sharded_state_dict, str(checkpoint_dir), sharded_strategy=_strategy(make))


def _strategy(make: MakeTensor):
    from megatron.core.dist_checkpointing.strategies.torch import (
        MCoreSavePlanner, TorchDistSaveShardedStrategy, _replace_state_dict_keys_with_sharded_keys,
        mcore_to_pyt_state_dict)  # loads megatron: only when used

    class MakingPlanner(MCoreSavePlanner):
        def resolve_data(self, write_item):
            if write_item.type == WriteItemType.BYTE_IO:
                return super().resolve_data(write_item)
            chunk = write_item.tensor_data.chunk
            tensor = make(write_item.index.fqn, tuple(chunk.offsets), tuple(chunk.sizes),
                          write_item.tensor_data.properties.dtype)
            if tuple(tensor.shape) != tuple(chunk.sizes):
                raise RuntimeError(f"{write_item.index.fqn}: made a tensor of shape {tuple(tensor.shape)}, "
                                   f"the checkpoint expects {tuple(chunk.sizes)}")
            return tensor

    class StreamingStrategy(TorchDistSaveShardedStrategy):
        def save(self, sharded_state_dict, checkpoint_dir):
            by_key, _, _ = _replace_state_dict_keys_with_sharded_keys(sharded_state_dict, self.keep_only_main_replica)
            # one writer thread: torch's serial loader resolves each tensor only when it writes it
            writer = dcp.FileSystemWriter(str(checkpoint_dir), single_file_per_rank=True, thread_count=1)
            writer.fs = _WritebackFileSystem()
            dcp.save(mcore_to_pyt_state_dict(by_key, False), storage_writer=writer,
                     planner=MakingPlanner(flatten_state_dict=False))

    return StreamingStrategy("torch_dist", 1)


class _WritebackFileSystem(FileSystem):
    """torch.distributed.checkpoint's file system, its data files written back as they grow."""

    @contextmanager
    def create_stream(self, path, mode: str):
        if mode != "wb" or not hasattr(os, "posix_fadvise"):
            with super().create_stream(path, mode) as stream:
                yield stream
            return
        with _WritebackFile(open(path, "wb", buffering=0)) as stream:
            yield stream


class _WritebackFile(io.BufferedWriter):
    """A buffered file that, every WRITEBACK_BYTES, asks the kernel to start writing the new pages
    out (POSIX_FADV_DONTNEED starts the writeback of dirty pages) and to drop the ones it wrote out
    at the previous request, so the disk writes while the next tensors are made."""

    def __init__(self, raw):
        super().__init__(raw)
        self._since = 0
        self._advised_from = self._mark = 0

    def write(self, data) -> int:
        written = super().write(data)
        self._since += written
        if self._since >= WRITEBACK_BYTES:
            self._since = 0
            self.flush()
            end = self.tell()
            os.posix_fadvise(self.fileno(), self._advised_from, end - self._advised_from, os.POSIX_FADV_DONTNEED)
            self._advised_from, self._mark = self._mark, end
        return written


def part(full: torch.Tensor, offsets: tuple[int, ...], sizes: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The block of `full` at `offsets` with `sizes` (leading axes of size 1 that `full` lacks, such
    as the layer axis megatron prepends to layer tensors, are added), contiguous, in `dtype`."""
    extra = len(sizes) - full.dim()
    block = full[tuple(slice(o, o + s) for o, s in zip(offsets[extra:], sizes[extra:]))]
    return block.reshape(sizes).to(dtype).contiguous()
