"""Reads what wandb wrote in offline mode: the records of a run's `run-<id>.wandb` file.

The file is wandb's transaction log: a 7-byte header (":W&B", magic 0xBEE1, version 0), then
blocks of 32 KiB holding chunks (crc32c 4 bytes, length 2 bytes, type 1 byte: 1 a whole record,
2/3/4 its first/middle/last part) of protobuf `Record` messages (wandb/proto/wandb_internal.proto).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7
CHUNK_HEADER = 7


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, f"{path}: not a wandb log"
    position, pending, out = HEADER, b"", []
    while position + CHUNK_HEADER <= len(data):
        room = BLOCK - position % BLOCK
        if room < CHUNK_HEADER:  # the rest of a block too small for a chunk header is padding
            position += room
            continue
        length, kind = struct.unpack("<HB", data[position + 4:position + 7])
        if length == 0 and kind == 0:  # zero padding at the end of a block
            position += room
            continue
        payload = data[position + CHUNK_HEADER:position + CHUNK_HEADER + length]
        position += CHUNK_HEADER + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def history(path: Path) -> list[dict]:
    """Every wandb.log() call of the run: {key: value}."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def config(path: Path) -> dict:
    """The run's config as the last update left it."""
    values = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


def run_ids(path: Path) -> set[str]:
    return {record.run.run_id for record in records(path) if record.WhichOneof("record_type") == "run"}
