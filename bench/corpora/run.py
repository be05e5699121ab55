"""bench/corpora: occi's corpora stage against datatrove on the Debian documentation corpus.

    .venv/bin/python bench/corpora/run.py --shards 7 [--data /tmp/occi-bench] [--corpus DATA/corpus]
        [--work DATA/runs] [--workers 2] [--sides occi,datatrove] [--words whitespace]
        [--repeats 3] [--wait-load X] [--dedup] [--binding] [--governance [--cold-lists]]

(make_corpus.py builds the corpus; setup_datatrove.sh the datatrove environment.) The first
--shards shards of the corpus are one input size (documents are ordered by a hash of their id,
so every prefix mixes all sources and languages alike). On it, one after the other on the same
machine, with the same worker count:

- occi: `occi corpora build` of a run config with every language of the table, the table's
  thresholds (FineWeb-2's), Gopher quality + repetition, FineWeb lines, exact + MinHash dedup,
  dropped documents written with their reason (for the agreement below);
- datatrove: datatrove_pipeline.py (same model file, thresholds, stop words and filters).

Each side runs as a child process; its wall time, CPU time (user + system of its whole tree) and
the peak of the summed RSS of its process tree (sampled every 0.1 s) are measured here, the same
way for both. Language-ID agreement: per
document, kept or dropped by language ID, and the language when kept, compared between the two.
Writes WORK/<size>/result.json and prints it.

--repeats N runs the sides N times, alternating (occi, datatrove, occi, datatrove, ...: this
machine's speed drifts within minutes, and neighbours come and go), and reports each side's
docs/s/core and the ratio of every round as min/median/max. --dedup first removes exact
duplicates (lower-cased text, whitespace collapsed: occi's exact key) from the input shards, so
the same comparison runs on deduplicated text. --wait-load X waits before each round until the
1-minute load average is below X (bench/loadwait.py).

--governance adds the URL filter and PII replacement on both sides, each its own: every input
document gets a URL (its package's made-up site; 2 % of them a domain and 0.5 % a URL of the UT1
adult lists that datatrove bundles, picked by a hash of the id), occi runs `url_filter` with those
two UT1 files (domains, urls: 4.56 M and 19.6 k lines) and `pii` (e-mail, IP, phone, IBAN);
datatrove runs its URLFilter with its integrated lists (the same two files, plus its banned-word
lists) and its PIIFormatter (e-mail, public IP), both after language ID, as occi does. Each side's
figures carry the 1-minute load average before and after it ran (the machine may be shared).
occi keeps its compiled lists in WORK/url-list-cache (`url_filter.cache_dir`) between runs: each
occi figure says whether its run found them there ("url_list_cache": warm) or compiled them
(cold); --cold-lists empties the folder before every occi run, so every run compiles.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from loadwait import wait_for_load  # noqa: E402
LID_REASONS = {"wrong_language", "not_a_run_language", "below_threshold"}


class TreeMemory(threading.Thread):
    """Samples the summed RSS of a process and its descendants; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.stopped.wait(self.interval)


def measured(command: list[str], log: Path) -> dict:
    """Runs a command, returns its wall time, CPU time (user + system, its whole tree) and the
    peak RSS of its process tree."""
    load_before = os.getloadavg()[0]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        memory = TreeMemory(proc.pid)
        memory.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        memory.stopped.set()
        memory.join()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {code}; see {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_tree_rss_mb": round(memory.peak / 1e6, 1),
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def input_subset(corpus: Path, shards: int, folder: Path, dedup: bool = False) -> tuple[int, float]:
    """FOLDER/part-*.jsonl: links to the first `shards` shards (or, with `dedup`, copies without
    exact duplicates); returns documents and MB."""
    files = sorted(corpus.glob("part-*.jsonl"))[:shards]
    if len(files) < shards:
        raise SystemExit(f"{corpus} has {len(files)} shards, fewer than --shards {shards}: run "
                         "bench/corpora/make_corpus.py first (see bench/README.md)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if dedup:
        from occi.corpora.dedup import exact_key

        seen: set[bytes] = set()
        for file in files:
            with file.open(encoding="utf-8") as source, (folder / file.name).open("w", encoding="utf-8") as target:
                for line in source:
                    key = exact_key(json.loads(line)["text"])
                    if key not in seen:
                        seen.add(key)
                        target.write(line)
        files = sorted(folder.glob("part-*.jsonl"))
    else:
        for file in files:
            (folder / file.name).symlink_to(file.resolve())
    docs = sum(1 for f in files for _ in f.open("rb"))
    return docs, sum(f.stat().st_size for f in files) / 1e6


def ut1_lists(datatrove_python: Path, folder: Path) -> Path:
    """FOLDER/domains and FOLDER/urls: the UT1 adult lists inside the datatrove package."""
    if not (folder / "domains").exists():
        assets = subprocess.run([str(datatrove_python), "-c", "from datatrove.utils._import_utils import ASSETS_PATH; "
                                 "print(ASSETS_PATH)"], check=True, capture_output=True, text=True).stdout.strip()
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "xzf", str(Path(assets) / "url_filterblacklistsv0_3_0.tar.gz"), "-C", str(folder)],
                       check=True)
    return folder


def add_urls(folder: Path, lists: Path) -> None:
    """Gives every document of FOLDER/part-*.jsonl a `url` (rewrites links as files)."""
    import hashlib

    domains = (lists / "domains").read_text(encoding="utf-8", errors="replace").split()
    urls = (lists / "urls").read_text(encoding="utf-8", errors="replace").split()
    for file in sorted(folder.glob("part-*.jsonl")):
        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
        file.unlink()
        with file.open("w", encoding="utf-8") as out:
            for row in rows:
                number = int.from_bytes(hashlib.sha1(row["id"].encode("utf-8")).digest()[:8], "little")
                package = row["id"].split("/")[0].replace("_", "-").lower() or "docs"
                if number % 200 < 4:
                    row["url"] = f"http://www.{domains[number % len(domains)]}/page/{number % 1000}"
                elif number % 200 == 4:
                    row["url"] = f"http://{urls[number % len(urls)]}"
                else:
                    row["url"] = f"https://{package}.docs{number % 97}.example.org/{row['id']}"
                out.write(json.dumps(row, ensure_ascii=False) + "\n")


def occi_config(subset: Path, workers: int, path: Path, native: bool = True, lists: Path | None = None,
                lists_cache: Path | None = None) -> None:
    from occi import languages

    codes = list(languages.LANGUAGES)
    text = (
        "# bench/corpora: every language of the table, the table's thresholds, default filters\n"
        "name: bench-corpora\n"
        f"languages: [{', '.join(json.dumps(c) for c in codes)}]\n"
        "corpora:\n"
        "  sources:\n"
        "    - name: debian-docs\n"
        "      kind: jsonl\n"
        f"      path: {subset}/part-*.jsonl\n"
        "      text_field: text\n"
        "      id_field: id\n"
        "  keep_dropped: true\n"
        f"  workers: {workers}\n"
        f"  langid: {{native: {json.dumps(native)}}}\n"
        "  decontamination: {enabled: false}   # datatrove has no such step (measured apart, bench/README.md)\n"
    )
    if lists is not None:
        text = text.replace("      id_field: id\n", "      id_field: id\n      url_field: url\n")
        text += ("  pii: {enabled: true}\n"
                 f"  url_filter: {{lists: [{{name: adult, path: {lists}/domains}}, {{name: adult_urls, path: {lists}/urls}}]"
                 f"{f', cache_dir: {lists_cache}' if lists_cache else ''}}}\n")
    path.write_text(text, encoding="utf-8")


def occi_decisions(run_dir: Path) -> dict[str, str | None]:
    """id -> language kept by language ID, or None when language ID dropped it. Documents
    dropped before language ID (normalisation, unreadable) are absent."""
    decisions: dict[str, str | None] = {}
    corpora = run_dir / "corpora"
    for part in corpora.glob("*/part-*.parquet"):
        table = pq.read_table(part, columns=["id", "language"])
        decisions.update(zip(table.column("id").to_pylist(), table.column("language").to_pylist()))
    for part in (corpora / "dropped").glob("*.parquet"):
        table = pq.read_table(part, columns=["id", "language", "step", "reason"])
        for doc_id, language, step, reason in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            if reason in LID_REASONS:
                decisions[doc_id] = None
            elif step not in ("read", "normalize"):
                decisions[doc_id] = language
    return decisions


def datatrove_decisions(out: Path) -> dict[str, str | None]:
    decisions = {}
    with (out / "lid_decisions.tsv").open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            doc_id, _label, _score, decision = line.rstrip("\n").split("\t")
            decisions[doc_id] = None if decision == "-" else decision
    return decisions


def agreement(ours: dict[str, str | None], theirs: dict[str, str | None]) -> dict:
    common = ours.keys() & theirs.keys()
    same_verdict = sum(1 for i in common if (ours[i] is None) == (theirs[i] is None))
    both_kept = [i for i in common if ours[i] is not None and theirs[i] is not None]
    same_language = sum(1 for i in both_kept if ours[i] == theirs[i])
    disagreements = Counter(
        f"occi {ours[i] or 'drop'} / datatrove {theirs[i] or 'drop'}" for i in common
        if (ours[i] is None) != (theirs[i] is None) or ours[i] != theirs[i])
    return {
        "documents_compared": len(common),
        "only_datatrove_saw": len(theirs.keys() - ours.keys()),
        "kept_by_lid": {"occi": sum(1 for i in common if ours[i]), "datatrove": sum(1 for i in common if theirs[i])},
        "kept_dropped_agreement": round(same_verdict / max(1, len(common)), 4),
        "same_language_when_both_kept": round(same_language / max(1, len(both_kept)), 4),
        "top_disagreements": dict(disagreements.most_common(8)),
    }


def occi_kept(run_dir: Path) -> int:
    stats = json.loads((run_dir / "corpora" / "stats.json").read_text())
    return int(stats["totals"]["documents_kept"])


def min_median_max(values: list[float]) -> dict:
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2),
            "max": round(max(values), 2), "values": [round(v, 2) for v in values]}


def run_side(side: str, args, work: Path, subset: Path, docs_in: int) -> dict:
    """One run of one side: wall, peak tree RSS, documents kept, docs/s/core."""
    cores = args.workers
    if side == "occi":
        run_dir = work / "occi"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        cache = work / "url-list-cache"
        if args.cold_lists:
            shutil.rmtree(cache, ignore_errors=True)
        warm = args.governance and any(cache.glob("*.npy"))
        occi_config(subset, args.workers, work / "occi.yaml", native=not args.binding,
                    lists=args.lists if args.governance else None, lists_cache=cache)
        figures = measured([str(Path(sys.executable).parent / "occi"), "corpora", "build", str(work / "occi.yaml"),
                            "--run-dir", str(run_dir)], work / "occi.log")
        figures["documents_kept"] = occi_kept(run_dir)
        if args.governance:
            figures["url_list_cache"] = "warm" if warm else "cold"
        figures["docs_per_s_per_core"] = round(docs_in / figures["wall_s"] / cores, 1)
        return figures
    if side == "datatrove":
        languages_json = work / "languages.json"
        languages_json.write_text(subprocess.run([sys.executable, str(HERE / "export_languages.py")], check=True,
                                                 capture_output=True, text=True).stdout)
        name = "datatrove" if args.words == "datatrove" else "datatrove_whitespace_words"
        out = work / name
        figures = measured([str(args.datatrove_python), str(HERE / "datatrove_pipeline.py"), "--corpus", str(subset),
                            "--languages", str(languages_json), "--out", str(out), "--workers", str(args.workers),
                            "--words", args.words, *(["--governance"] if args.governance else [])],
                           work / f"{name}.log")
        own = json.loads((out / "result.json").read_text())
        figures.update(documents_kept=own["docs_out"], stage_s=own["stage_s"])
        figures["docs_per_s_per_core"] = round(docs_in / figures["wall_s"] / cores, 1)
        return figures
    raise SystemExit(f"unknown side {side!r}: occi or datatrove")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/occi-bench"),
                        help="the folder make_corpus.py and setup_datatrove.sh wrote to (default /tmp/occi-bench)")
    parser.add_argument("--corpus", type=Path, default=None, help="default DATA/corpus")
    parser.add_argument("--shards", type=int, required=True, help="use the first N shards (about 8 MB each)")
    parser.add_argument("--work", type=Path, default=None, help="default DATA/runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sides", default="occi,datatrove")
    parser.add_argument("--datatrove-python", type=Path, default=None, help="default DATA/venv-datatrove/bin/python")
    parser.add_argument("--words", choices=("datatrove", "whitespace"), default="datatrove",
                        help="word tokenizer on the datatrove side (see datatrove_pipeline.py)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds of the sides (min/median/max)")
    parser.add_argument("--wait-load", type=float, default=None,
                        help="before each round, wait until the 1-minute load average is below this")
    parser.add_argument("--dedup", action="store_true", help="remove exact duplicates from the input first")
    parser.add_argument("--governance", action="store_true",
                        help="URL filter (UT1 lists) and PII replacement on both sides; documents get URLs")
    parser.add_argument("--cold-lists", action="store_true",
                        help="--governance: empty occi's cache of compiled URL lists before each occi run (each "
                             "run compiles them; without it only the first run does, and each run says which)")
    parser.add_argument("--binding", action="store_true",
                        help="occi's language ID with the fastText binding (corpora.langid.native: false)")
    args = parser.parse_args(argv)
    args.corpus = args.corpus or args.data / "corpus"
    args.work = args.work or args.data / "runs"
    args.datatrove_python = args.datatrove_python or args.data / "venv-datatrove" / "bin" / "python"
    sides = args.sides.split(",")
    if "datatrove" in sides and not args.datatrove_python.exists():
        raise SystemExit(f"{args.datatrove_python} does not exist: run bench/corpora/setup_datatrove.sh first "
                         "or pass --datatrove-python")

    work = args.work / f"{args.shards}-shards{'-dedup' if args.dedup else ''}{'-governance' if args.governance else ''}"
    work.mkdir(parents=True, exist_ok=True)
    subset = work / "input"
    docs_in, mb_in = input_subset(args.corpus, args.shards, subset, args.dedup)
    if args.governance:
        args.lists = ut1_lists(args.datatrove_python, args.data / "ut1")
        add_urls(subset, args.lists)
    result = {"input": {"shards": args.shards, "documents": docs_in, "jsonl_mb": round(mb_in, 1)},
              "workers": args.workers, "machine_cores": os.cpu_count()}
    previous = work / "result.json"
    if previous.exists():  # one side re-run alone keeps the other's figures
        result = {**json.loads(previous.read_text()), **result}

    side_name = "datatrove" if args.words == "datatrove" else "datatrove_whitespace_words"
    rounds: list[dict] = []
    for round_index in range(args.repeats):
        figures_of_round = {}
        wait_for_load(args.wait_load)
        for side in sides:
            figures_of_round[side if side == "occi" else side_name] = run_side(side, args, work, subset, docs_in)
            print(f"round {round_index + 1}/{args.repeats} {side}: {figures_of_round}", file=sys.stderr, flush=True)
        rounds.append(figures_of_round)
    result.update(rounds[-1])
    if args.repeats > 1:
        result["rounds"] = rounds
        spread = {}
        for side in rounds[0]:
            rates = [r[side]["docs_per_s_per_core"] for r in rounds]
            spread[f"{side}_docs_per_s_per_core"] = min_median_max(rates)
        if "occi" in rounds[0] and side_name in rounds[0]:
            spread[f"ratio_occi_over_{side_name}"] = min_median_max(
                [r["occi"]["docs_per_s_per_core"] / r[side_name]["docs_per_s_per_core"] for r in rounds])
        result["spread"] = spread
    for side in ("datatrove", "datatrove_whitespace_words"):
        if "occi" in result and side in result:
            result[f"throughput_ratio_occi_over_{side}"] = round(
                result["occi"]["docs_per_s_per_core"] / result[side]["docs_per_s_per_core"], 2)
            result[f"language_id_{side}"] = agreement(occi_decisions(work / "occi"), datatrove_decisions(work / side))
    (work / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
