"""Reading documents from sources, one shard at a time.

A shard is one local file, or one of the shards `datasets` streams a hub dataset in. The plan
of shards is a pure function of the recipe and the files on disk (sorted globs), so every rank
of a SLURM array computes the same plan and takes every world_size-th shard.

Readers never raise for bad data: a malformed line, invalid UTF-8, a missing text field or a
truncated file becomes an `Unreadable` record with its reason, and reading goes on where it can.
"""
from __future__ import annotations

import glob
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from occi import languages
from occi.corpora.compressed import COMPRESSED_SUFFIXES, open_binary
from occi.corpora.config import CorporaConfig, SourceConfig
from occi.corpora.document import Document, Unreadable
from occi.errors import OcciError, warn
from occi.globbing import glob_files
from occi.hub import dataset_files, is_local, is_offline, source_item

Record = Document | Unreadable

_JSONL_SUFFIXES = tuple(name + compressed for name in (".jsonl", ".ndjson", ".json")
                        for compressed in ("", *COMPRESSED_SUFFIXES))
_BOM = b"\xef\xbb\xbf"
_PARAGRAPH_BREAK = re.compile(rb"\n[ \t\r]*\n")


@dataclass(frozen=True)
class Shard:
    index: int
    """Position in the plan; shard files and output parts are named after it."""
    source: SourceConfig
    """The source (expanded for one language when it is per-language)."""
    location: str
    """The local file, or the hub dataset's shard number."""
    num_hub_shards: int
    """hub: how many shards the dataset streams in; 0 for local files."""
    limit: int | None
    """At most this many documents from this shard."""

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    def describe(self) -> str:
        if self.num_hub_shards:
            return f"{self.source.name}: {self.source.dataset} shard {self.location}/{self.num_hub_shards}"
        return f"{self.source.name}: {self.location}"


def expand_sources(cfg: CorporaConfig, run_languages: list[str]) -> list[SourceConfig]:
    """Sources with language placeholders replaced, once per run language."""
    expanded = []
    for source in cfg.sources:
        if not source.per_language:
            expanded.append(source)
            continue
        for code in run_languages:
            lang = languages.get(code)
            values = {"code": code, "iso639_3": lang.iso639_3, "script": lang.script, "glotlid": lang.glotlid,
                      "name": lang.name}

            def fill(text: str | None) -> str | None:
                return text.format(**values) if text else text

            expanded.append(
                SourceConfig(
                    **{
                        **source.__dict__,
                        "name": f"{source.name}-{code}" if "{" not in source.name else fill(source.name),
                        "path": fill(source.path),
                        "subset": fill(source.subset),
                        "language": fill(source.language),
                        "data_files": [fill(f) for f in source.data_files] if source.data_files else None,
                    }
                )
            )
    return expanded


def sources_outside_run(cfg: CorporaConfig, run_languages: list[str]) -> list[SourceConfig]:
    """Sources declared in a language the run does not have: they are not read."""
    return [s for s in expand_sources(cfg, run_languages) if s.language and s.language not in run_languages]


def plan_shards(cfg: CorporaConfig, run_languages: list[str], manifest=None) -> list[Shard]:
    """Every shard of every source, in a fixed order. A hub source listed in the run's fetch
    manifest (occi/hub.py) is planned from its fetched files, without the network,
    its limit taken from the files in order; offline, a hub source must be listed there."""
    shards: list[Shard] = []
    for source in expand_sources(cfg, run_languages):
        if source.language and source.language not in run_languages:
            continue
        fetched = _fetched_files(source, cfg.base_dir, manifest) if source.kind == "hub" else None
        if fetched is not None:
            remaining = source.limit
            for entry in fetched:
                limit = None
                if remaining is not None:
                    if remaining <= 0:
                        break
                    rows = entry.get("rows")
                    limit = remaining if rows is None else min(rows, remaining)
                    remaining -= limit
                shards.append(Shard(len(shards), source, entry["path"], 0, limit))
            continue
        if source.kind == "hub":
            # with a limit: one stream, its leading documents in file order, the documents `occi
            # fetch` takes for it, so a run reads the same text online and offline
            count = 1 if source.limit is not None else _hub_shard_count(source, cfg.base_dir)
            locations = [str(i) for i in range(count)]
        else:
            locations = local_files(source, cfg.base_dir)
            count = 0
        for i, location in enumerate(locations):
            limit = None
            if source.limit is not None:
                limit = source.limit // len(locations) + (1 if i < source.limit % len(locations) else 0)
                if limit == 0:
                    continue
            shards.append(Shard(len(shards), source, location, count, limit))
    return shards


def _fetched_files(source: SourceConfig, base_dir: str, manifest) -> list[dict] | None:
    item = source_item(source, base_dir)
    files = dataset_files(manifest, item)
    if files is None and is_offline() and not is_local(item):
        raise OcciError(f"source {source.name!r}: {item.key} is not in the run's fetch manifest and the hub is "
                        "offline (HF_HUB_OFFLINE=1); run `occi fetch CONFIG` where there is internet first")
    return files


def read_shard(shard: Shard, base_dir: str, max_doc_chars: int) -> Iterator[Record]:
    """The documents of one shard (at most its limit), and what could not be read."""
    readers = {"jsonl": _read_jsonl, "parquet": _read_parquet, "text": _read_text, "hub": _read_hub}
    if not shard.num_hub_shards and shard.source.kind != "hub":
        problem = _file_problem(shard.source, shard.location)
        if problem:
            yield Unreadable(problem[0], shard.source.name, shard.location, detail=problem[1])
            return
    produced = 0
    for record in readers[shard.source.kind](shard, base_dir, max_doc_chars):
        yield record
        if isinstance(record, Document):
            produced += 1
            if shard.limit is not None and produced >= shard.limit:
                return


def _resolve(base_dir: str, pattern: str) -> str:
    path = Path(pattern).expanduser()
    return str(path if path.is_absolute() else Path(base_dir) / path)


def local_files(source: SourceConfig, base_dir: str) -> list[str]:
    """Every file the glob matches, readable or not: a file no reader handles (or a dangling
    link) becomes a shard that is counted as unsupported_file (unreadable_file), not skipped."""
    pattern = _resolve(base_dir, source.path or "")
    matched = glob_files(pattern)
    for link, target in matched.loops:
        warn(f"source {source.name!r}: {link} is a symlink loop (it leads back to {target}); not followed")
    files = matched.files
    if not any(_file_problem(source, f) is None for f in files):
        found = f"; {len(files)} matched but none can be read (first: {files[0]}: " \
                f"{_file_problem(source, files[0])[1]})" if files else ""
        raise OcciError(
            f"source {source.name!r}: no {source.kind} files match {source.path!r} "
            f"(looked for {pattern}{found}); fix `path` in the corpus recipe"
        )
    return files


def _dangling(path: str) -> bool:
    return os.path.islink(path) and not os.path.exists(path)


def _file_problem(source: SourceConfig, path: str) -> tuple[str, str] | None:
    """(reason, detail) when a matched file cannot be read at all; None when it can."""
    if _dangling(path):
        return "unreadable_file", f"a link to {os.readlink(path)!r}, which does not exist"
    if source.kind == "jsonl" and not path.endswith(_JSONL_SUFFIXES):
        return "unsupported_file", "jsonl sources read " + ", ".join(_JSONL_SUFFIXES) + " files"
    return None


def _load_hub(source: SourceConfig, base_dir: str):
    import datasets  # loads datasets: only when used

    data_files = [local_if_exists(base_dir, f) for f in source.data_files] if source.data_files else None
    try:
        return datasets.load_dataset(
            source.dataset, source.subset, split=source.split, data_files=data_files, streaming=True
        )
    except Exception as err:  # datasets raises many types for "cannot open"
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OcciError(
            f"source {source.name!r}: cannot open dataset {source.dataset!r}"
            f"{f' subset {source.subset!r}' if source.subset else ''}: {message} "
            "(check the id and subset, the network, and HF_TOKEN for gated datasets)"
        ) from None


def local_if_exists(base_dir: str, pattern: str) -> str:
    """A data file pattern resolved against the recipe's folder when it matches files there; else as written."""
    if "://" in pattern:
        return pattern
    resolved = _resolve(base_dir, pattern)
    return resolved if glob.glob(resolved) else pattern


def _hub_shard_count(source: SourceConfig, base_dir: str) -> int:
    return max(1, _load_hub(source, base_dir).n_shards)


def _read_hub(shard: Shard, base_dir: str, max_doc_chars: int) -> Iterator[Record]:
    if not shard.num_hub_shards:  # a file `occi fetch` put into the cache
        reader = _read_parquet if shard.location.endswith(".parquet") else _read_jsonl
        yield from reader(shard, base_dir, max_doc_chars)
        return
    source = shard.source
    where = f"{source.dataset} shard {shard.location}"
    try:
        dataset = _load_hub(source, base_dir).shard(shard.num_hub_shards, int(shard.location))
        for row_number, row in enumerate(dataset):
            yield _from_mapping(row, source, f"{where} row {row_number}", _default_id(shard, row_number), max_doc_chars)
    except OcciError:
        raise
    except Exception as err:
        yield Unreadable("unreadable_file", source.name, where, detail=f"{type(err).__name__}: {err}")


def _default_id(shard: Shard, row: int) -> str:
    return f"{shard.source.name}/{Path(shard.location).name}/{row}"


def _from_mapping(row: Any, source: SourceConfig, where: str, default_id: str, max_doc_chars: int) -> Record:
    if not isinstance(row, dict):
        return Unreadable("malformed_json", source.name, where, detail="a line is not a JSON object")
    text = row.get(source.text_field)
    if text is None:
        return Unreadable("missing_text_field", source.name, where, detail=f"no {source.text_field!r} field")
    if not isinstance(text, str):
        return Unreadable("missing_text_field", source.name, where, detail=f"{source.text_field!r} is not a string")
    if len(text) > max_doc_chars:
        return Unreadable("too_long", source.name, where, detail=f"{len(text):,} characters")
    raw_id = row.get(source.id_field) if source.id_field else None
    doc_id = default_id if raw_id is None else _clean_id(raw_id)
    metadata = {"language_declared": source.language} if source.language else {}
    url = row.get(source.url_field) if source.url_field else None
    if isinstance(url, str) and url:
        metadata["url"] = url
    return Document(text=text, id=doc_id, source=source.name, metadata=metadata)


def _clean_id(value: Any) -> str:
    text = str(value)
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


_FILE_ERRORS = (OSError, EOFError, zlib.error)


def _file_error(err: BaseException) -> str:
    """truncated_file for a compressed file that ends early, unreadable_file otherwise."""
    text = str(err).lower()
    if isinstance(err, EOFError) or "ended before" in text or "incomplete" in text or "premature" in text:
        return "truncated_file"
    return "unreadable_file"


def _zstd_errors() -> tuple[type[BaseException], ...]:
    try:
        import zstandard  # optional: zstandard may be missing (the except names the fix)

        return (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return ()


def _read_jsonl(shard: Shard, base_dir: str, max_doc_chars: int) -> Iterator[Record]:
    source, path = shard.source, shard.location
    default_id = f"{source.name}/{Path(path).name}/"  # and the line number
    line_number = 0
    try:
        with open_binary(path) as handle:
            for line_number, raw in enumerate(handle, 1):
                where = f"{path}:{line_number}"
                if line_number == 1 and raw.startswith(_BOM):  # a byte-order mark is not part of the text
                    raw = raw[len(_BOM):]
                if not raw or raw.isspace():  # what bytes.strip() would leave empty, without the copy
                    continue
                if len(raw) > 4 * max_doc_chars + 64:  # cannot hold a short enough text
                    yield Unreadable("too_long", source.name, where, detail=f"{len(raw):,} bytes")
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield Unreadable("invalid_utf8", source.name, where, detail=str(err))
                    continue
                try:
                    row = _parse_line(line)
                except json.JSONDecodeError as err:
                    yield Unreadable("malformed_json", source.name, where, detail=str(err))
                    continue
                yield _from_mapping(row, source, where, f"{default_id}{line_number}", max_doc_chars)
    except (*_FILE_ERRORS, *_zstd_errors()) as err:
        yield Unreadable(_file_error(err), source.name, f"{path} after line {line_number}", detail=str(err))


_SCAN = json.JSONDecoder().scan_once  # the C scanner json.loads ends in, without its Python layers
_LINE_ENDS = ("\n", "\r\n")


def _parse_line(line: str) -> Any:
    """json.loads(line), its errors included: the usual line (a value from its first character,
    then at most the line break) goes straight to json's C scanner; anything else (whitespace
    first, extra data, a byte-order mark, a syntax error) to json.loads, for the same value or
    the same message."""
    try:
        row, end = _SCAN(line, 0)
    except Exception:  # StopIteration, JSONDecodeError, RecursionError...: json.loads raises its own
        return json.loads(line)
    if end == len(line) or line[end:] in _LINE_ENDS:
        return row
    return json.loads(line)


def _read_parquet(shard: Shard, base_dir: str, max_doc_chars: int) -> Iterator[Record]:
    import pyarrow.parquet as pq  # loads pyarrow: only when used

    source, path = shard.source, shard.location
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for broken files
        yield Unreadable("unreadable_file", source.name, path, detail=str(err))
        return
    names = parquet.schema_arrow.names
    if source.text_field not in names:
        yield Unreadable(
            "missing_text_field", source.name, path, count=parquet.metadata.num_rows,
            detail=f"no {source.text_field!r} column (columns: {', '.join(names)})",
        )
        return
    columns = [source.text_field] + [f for f in (source.id_field, source.url_field) if f and f in names]
    row_number = 0
    try:
        for batch in parquet.iter_batches(columns=columns, batch_size=1024):
            for row in batch.to_pylist():
                yield _from_mapping(row, source, f"{path} row {row_number}", _default_id(shard, row_number), max_doc_chars)
                row_number += 1
    except Exception as err:
        yield Unreadable("unreadable_file", source.name, f"{path} row {row_number}", detail=str(err))


def _read_text(shard: Shard, base_dir: str, max_doc_chars: int) -> Iterator[Record]:
    source, path = shard.source, shard.location
    try:
        with open_binary(path) as handle:
            data = handle.read()
    except (*_FILE_ERRORS, *_zstd_errors()) as err:
        yield Unreadable(_file_error(err), source.name, path, detail=str(err))
        return
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    pieces = [data] if source.text_unit == "file" else _PARAGRAPH_BREAK.split(data)
    metadata = {"language_declared": source.language} if source.language else {}
    for number, piece in enumerate(pieces):
        where = f"{path} paragraph {number}"
        if not piece.strip():
            continue
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError as err:
            yield Unreadable("invalid_utf8", source.name, where, detail=str(err))
            continue
        if len(text) > max_doc_chars:
            yield Unreadable("too_long", source.name, where, detail=f"{len(text):,} characters")
            continue
        yield Document(text=text, id=f"{source.name}/{Path(path).name}/{number}", source=source.name,
                       metadata=dict(metadata))
