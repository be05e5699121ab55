"""The corpora stage's governance steps: URL block and opt-out lists, personal data, domain
statistics and decontamination, on demo documents given URLs and planted items."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import occi, sample_docs, write_config, write_jsonl
from occi.corpora.config import UrlListConfig
from occi.corpora.document import Document
from occi.corpora.urlfilter import (UrlFilter, _listed, _normalize_entries, compile_lists, key_hashes, normalize_entry,
                                    url_keys, url_parts)
from occi.errors import OcciError
from occi.report.governance_section import decontamination_table, governance_section

REPO = Path(__file__).resolve().parents[1]


def _mc_item(code: str, number: int = 0) -> str:
    """One of occi_mc's questions with its choices, as a page quoting the benchmark would have it."""
    row = json.loads((REPO / "eval" / "data" / "mc" / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()[number])
    return row["question"] + " " + " ".join(row["choices"]) + "."


def _documents() -> list[dict]:
    de, fr = sample_docs("de"), sample_docs("fr")
    urls = {
        "de-01": "https://www.blocked-adult.com/galerie",             # a listed domain
        "de-02": "http://cdn.img.blocked-adult.com/x.html",           # a subdomain of it
        "de-03": "https://news.optout-verlag.de/2024/bericht",        # a domain that reserved its rights
        "de-04": "https://wiki.beispiel.de/Brot",
        "de-05": "https://www.beispiel.de/jobs",
        "de-06": "https://beispiel.de/dorf",
        "fr-01": "https://exemple.fr/interdit/marche",                # a listed URL prefix
        "fr-02": "https://exemple.fr/autorise/lettre",                # same site, another path
    }
    for i, doc in enumerate(fr[2:], 3):
        urls[doc["id"]] = f"https://{'blog.' if i % 2 else ''}journal-exemple.fr/{i}"
    rows = [{**doc, "url": urls[doc["id"]]} for doc in de + fr]
    by_id = {row["id"]: row for row in rows}
    by_id["de-04"]["text"] += " Quizfrage aus dem Netz: " + _mc_item("de")          # planted benchmark items
    by_id["fr-03"]["text"] += " Question du jour : " + _mc_item("fr", 2)
    by_id["de-05"]["text"] += " Bewerbungen an personal@beispiel-firma.de oder Tel. 030 12345678."  # planted PII
    by_id["fr-04"]["text"] += " Virement sur FR14 2004 1010 0505 0001 3M02 606 avant lundi."
    return rows


def _lists(folder: Path) -> list[dict]:
    (folder / "lists").mkdir(parents=True, exist_ok=True)
    (folder / "lists" / "adult.txt").write_text("# UT1-style domains and URLs\nblocked-adult.com\nexemple.fr/interdit\n")
    (folder / "lists" / "optout.txt").write_text("optout-verlag.de\n")
    return [{"name": "adult", "path": "lists/adult.txt"},
            {"name": "optout", "path": "lists/optout.txt", "kind": "optout"}]


@pytest.fixture(scope="module")
def governed(tmp_path_factory) -> Path:
    """One build of de + fr with the lists, pii on and the planted items (dropped documents kept)."""
    folder = tmp_path_factory.mktemp("governed")
    write_jsonl(folder / "in" / "web.jsonl", _documents())
    config = write_config(folder, ["de", "fr"], [{"name": "web", "kind": "jsonl", "path": "in/*.jsonl",
                                                  "url_field": "url", "license": "CC-BY-4.0"}],
                          url_filter={"lists": _lists(folder), "cache_dir": str(folder / "url-cache")},
                          pii={"enabled": True}, keep_dropped=True)
    result = occi("corpora", "build", str(config), "--run-dir", str(folder / "run"))
    assert result.returncode == 0, result.stderr
    return folder / "run"


def _kept(run: Path, code: str) -> dict[str, dict]:
    return {row["id"]: row for part in sorted((run / "corpora" / code).glob("part-*.parquet"))
            for row in pq.read_table(part).to_pylist()}


def _dropped(run: Path) -> dict[str, str]:
    return {row["id"]: f"{row['step']}/{row['reason']}" for part in (run / "corpora" / "dropped").glob("*.parquet")
            for row in pq.read_table(part).to_pylist()}


def test_url_lists_drop_domains_subdomains_and_url_prefixes_counted_per_list_and_language(governed):
    stats = json.loads((governed / "corpora" / "stats.json").read_text())
    assert stats["url_filter"] == {
        "lists": {"adult": {"kind": "blocklist", "path": "lists/adult.txt", "entries": 2},
                  "optout": {"kind": "optout", "path": "lists/optout.txt", "entries": 1}},
        "dropped": {"adult": {"de": 2, "fr": 1}, "optout": {"de": 1}},
    }
    dropped = _dropped(governed)
    assert {i: dropped[i] for i in ("de-01", "de-02", "de-03", "fr-01")} == {
        "de-01": "url_filter/adult", "de-02": "url_filter/adult", "de-03": "url_filter/optout", "fr-01": "url_filter/adult"}
    assert "fr-02" in _kept(governed, "fr")
    assert stats["languages"]["de"]["drops"]["url_filter/optout"] == 1


def test_personal_data_is_replaced_in_kept_documents_and_counted(governed):
    stats = json.loads((governed / "corpora" / "stats.json").read_text())
    assert stats["pii"] == {"de": {"email": 1, "ip": 0, "phone": 1, "iban": 0},
                            "fr": {"email": 0, "ip": 0, "phone": 0, "iban": 1}}
    de5, fr4 = _kept(governed, "de")["de-05"], _kept(governed, "fr")["fr-04"]
    assert "personal@" not in de5["text"] and "email@example.com" in de5["text"] and "12345678" not in de5["text"]
    assert "FR14" not in fr4["text"] and json.loads(fr4["metadata"])["pii"] == {"iban": 1}


def test_planted_benchmark_items_are_found_dropped_and_reported(governed):
    stats = json.loads((governed / "corpora" / "stats.json").read_text())
    section = stats["decontamination"]
    assert (section["ngram"], section["action"]) == (13, "drop")
    assert section["found"] == {"occi_mc": {"de": 1, "fr": 1}}
    assert _dropped(governed)["de-04"] == "decontaminate/occi_mc"
    assert _dropped(governed)["fr-03"] == "decontaminate/occi_mc"
    assert "de-04" not in _kept(governed, "de")
    table = decontamination_table(section, ["de", "fr"])
    assert "| occi_mc | 1 | 1 |" in table


def test_domain_statistics_are_exact_per_registered_domain(governed):
    domains = json.loads((governed / "corpora" / "domains.json").read_text())
    assert domains["method"].startswith("exact")
    fr = domains["sources"]["web"]["fr"]
    by_domain = {entry["domain"]: entry for entry in fr["top"]}
    assert set(by_domain) == {"exemple.fr", "journal-exemple.fr"}  # blog.journal-exemple.fr counts with its site
    journal = [doc["id"] for doc in _documents() if "journal-exemple.fr" in doc["url"]]
    # counted after the filters (pii's placeholders included), before decontamination drops fr-03
    texts = {**{i: row["text"] for i, row in _kept(governed, "fr").items()},
             **{row["id"]: row["text"] for row in _removed_texts(governed)}}
    expected_bytes = sum(len(texts[i].encode()) for i in journal)
    assert by_domain["journal-exemple.fr"] == {"domain": "journal-exemple.fr", "documents": len(journal),
                                               "bytes": expected_bytes}
    assert fr["top"][0]["bytes"] >= fr["top"][-1]["bytes"]
    assert (governed / "corpora" / "domains.png").read_bytes()[:4] == b"\x89PNG"


def _removed_texts(run: Path) -> list[dict]:
    return [row for part in (run / "corpora" / "dropped").glob("duplicates-*.parquet") for row in pq.read_table(part).to_pylist()]


def test_the_card_section_states_lists_personal_data_and_contamination(governed):
    text = "\n".join(governance_section(governed, ["de", "fr"]))
    assert "| adult | blocklist | 2 | 3 |" in text and "| optout | optout | 1 | 1 |" in text
    assert "1 email" in text and "1 iban" in text and "| occi_mc | 1 | 1 |" in text


def test_flag_keeps_contaminated_documents_and_marks_them(tmp_path):
    rows = [{**doc} for doc in sample_docs("fr")[:3]]
    rows[1]["text"] += " " + _mc_item("fr", 1)
    write_jsonl(tmp_path / "in" / "fr.jsonl", rows)
    config = write_config(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "in/*.jsonl"}],
                          decontamination={"action": "flag"})
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    kept = _kept(tmp_path / "run", "fr")
    assert sorted(kept) == ["fr-01", "fr-02", "fr-03"]
    assert json.loads(kept["fr-02"]["metadata"])["contaminated"] == ["occi_mc"]
    assert "contaminated" not in json.loads(kept["fr-01"]["metadata"])
    stats = json.loads((tmp_path / "run" / "corpora" / "stats.json").read_text())
    assert stats["decontamination"]["found"] == {"occi_mc": {"fr": 1}}


def test_a_list_of_many_domains_is_one_shared_memory_mapped_array(tmp_path):
    domains = [f"site{i}.example{i % 7}.com" for i in range(200_000)]
    (tmp_path / "big.txt").write_text("\n".join(domains) + "\n")
    compiled = compile_lists([UrlListConfig(name="big", path="big.txt")], str(tmp_path), tmp_path / "lists")
    assert compiled[0].entries == 200_000
    step = UrlFilter(compiled)
    assert isinstance(step.lists[0][1], np.memmap)  # workers share the page cache, nothing is copied
    assert step.filter(Document("t", "1", "s", metadata={"url": "https://a.b.site123456.example4.com/x"})) == "big"
    assert step.filter(Document("t", "2", "s", metadata={"url": "https://site123456.example2.com/"})) is None
    assert step.filter(Document("t", "3", "s")) is None  # no URL: nothing to match


def test_a_compiled_list_is_reused_for_the_same_content_and_never_for_changed_content(tmp_path):
    """The cache is keyed by the list's bytes: a copy elsewhere reuses the array; an edit that keeps
    the file's size and time stamps (what a stamp check would trust) is compiled anew."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    listed = tmp_path / "a" / "domains"
    listed.write_text("blocked-one.com\nblocked-two.com\n")
    (tmp_path / "b" / "domains").write_text(listed.read_text())
    lists = [UrlListConfig(name="adult", path="domains")]
    first = compile_lists(lists, str(tmp_path / "a"), tmp_path / "cache")[0]
    written = first.hashes_file.stat().st_mtime_ns
    again = compile_lists(lists, str(tmp_path / "b"), tmp_path / "cache")[0]
    assert again.hashes_file == first.hashes_file and again.hashes_file.stat().st_mtime_ns == written
    doc = Document("t", "1", "s", metadata={"url": "https://www.blocked-two.com/x"})
    assert UrlFilter([again]).filter(doc) == "adult"

    stamp = listed.stat()
    listed.write_text("blocked-one.com\nblocked-six.com\n")  # same size
    os.utime(listed, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert listed.stat().st_size == stamp.st_size and listed.stat().st_mtime_ns == stamp.st_mtime_ns
    changed = compile_lists(lists, str(tmp_path / "a"), tmp_path / "cache")[0]
    assert changed.hashes_file != first.hashes_file and changed.entries == 2
    assert UrlFilter([changed]).filter(doc) is None
    assert UrlFilter([changed]).filter(Document("t", "2", "s", metadata={"url": "http://blocked-six.com"})) == "adult"


def test_an_unwritable_list_cache_is_one_clear_line(tmp_path):
    (tmp_path / "domains").write_text("blocked-one.com\n")
    (tmp_path / "cache").write_text("a file, not a folder")
    with pytest.raises(OcciError, match="url_filter.cache_dir: cannot write the compiled list 'adult'"):
        compile_lists([UrlListConfig(name="adult", path="domains")], str(tmp_path), tmp_path / "cache")


def test_url_keys_are_the_host_its_parents_and_path_prefixes():
    assert url_keys("HTTPS://www.News.Example.co.uk:8080/a/b?q=1") == [
        "news.example.co.uk", "example.co.uk", "co.uk", "uk", "news.example.co.uk/a", "news.example.co.uk/a/b"]


def test_the_compiled_look_up_matches_exactly_the_keys_of_url_keys():
    """UrlFilter hashes the host, its parents and the path prefixes in one compiled pass: every key
    url_keys names (empty labels and segments, a trailing dot, non-ASCII hosts included) is found,
    and nothing else is."""
    urls = ["http://a..b.example.com./x//y/", "HTTPS://WWW.Exämple.COM:80/a/b/", "bare.example.org/p/q",
            "http://[2001:db8::7]/x", "http://10.1.2.3/a", "https://x.y.z.example.co.uk/one/two/three.html?q=1"]
    parts = [url_parts(url) for url in urls]
    for url in urls:
        for key in url_keys(url):
            hashes = np.sort(key_hashes([key]))
            found = [i for i, (host, path) in enumerate(parts) if _listed(host.encode(), path.encode(), hashes)]
            assert found == [i for i, other in enumerate(urls) if key in url_keys(other)] and found, (url, key)
    assert url_parts("http://") is None and url_keys("http://") == []


def test_list_lines_are_normalised_alike_line_by_line_and_all_at_once():
    import pyarrow as pa

    lines = ["  HTTPS://WWW.Example.COM:8080/a/b/  ", "# comment", "", "*.sub.test.org", ".x.net", "www.abc.de",
             "abc.de/Path/X", "ftp://h.org", "http://:80/x", "Bücher.de", "plain.example", "plain.example/a/b"]
    expected = [key for key in map(normalize_entry, lines) if key is not None]
    assert sorted(_normalize_entries(pa.array(lines)).to_pylist()) == sorted(expected)
    assert expected[:2] == ["example.com/a/b", "sub.test.org"] and "bücher.de" in expected and "abc.de" in expected


def test_a_missing_list_file_is_one_clear_line(tmp_path):
    write_jsonl(tmp_path / "in" / "fr.jsonl", sample_docs("fr")[:1])
    config = write_config(tmp_path, ["fr"], [{"name": "web", "kind": "jsonl", "path": "in/*.jsonl"}],
                          url_filter={"lists": [{"name": "optout", "path": "lists/missing.txt"}]})
    result = occi("corpora", "build", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "url_filter.lists[optout].path" in result.stderr and "Traceback" not in result.stderr


def test_a_leaderboard_task_whose_data_cannot_be_read_is_listed_as_not_checked(tmp_path):
    """Offline and never fetched: SIB-200's `hf://` files cannot be read; the task is named, with
    why, instead of the corpora stage stopping (its eval cell fails alone with the same reason)."""
    import os
    import subprocess
    import sys

    code = ("import json, sys; from pathlib import Path; from occi.corpora import eval_benchmarks; "
            "found, missing = eval_benchmarks.load(Path(sys.argv[1]), Path(sys.argv[2]), [('sib200', 'sib200_de')]); "
            "print(json.dumps([[b.name for b in found], missing]))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run"), str(tmp_path / "work")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    found, missing = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == [] and len(missing) == 1 and missing[0].startswith("sib200_de (cannot load its data: "), missing
    assert (tmp_path / "work" / "eval-benchmarks.json").exists()  # read once, for every worker and phase
