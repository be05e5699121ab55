"""`occi fetch CONFIG`: on a machine with internet (a login node), put everything the run reads
from the hub into the cache the compute jobs read, and write the manifest <run>/fetch.json.

Items (occi/preflight/manifest.py): corpus sources per language — only the files the configured
`limit` needs where the rows per file can be counted (Parquet footers, JSON lines) —, the base
model, the datasets of the evaluation tasks and the remote data files of json/csv/parquet tasks
(EU20, SIB-200: `hf://` files), a language-ID model given by URL. Each file's size and sha256
are recorded and compared with the hub's metadata; a file found truncated or changed is fetched
again by the next `occi fetch`. The sizes are
known before anything is downloaded; the command stops when the cache's file system has not
room for them. Downloads are resumable (huggingface_hub keeps partial files and skips finished
ones) and the manifest is written after each item, so the same command continues a broken fetch.
A local folder given where a hub id is expected goes through the same path: its files are
recorded, nothing is copied.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import time
import urllib.request
from dataclasses import dataclass, field
from fnmatch import fnmatch, fnmatchcase
from functools import lru_cache
from pathlib import Path

from occi.corpora.compressed import open_binary
from occi.corpora.config import LangIdConfig
from occi.corpora.sources import local_if_exists
from occi.errors import OcciError
from occi.preflight import integrity
from occi.preflight.manifest import Item, Manifest, needed_items
from occi.rundir import RunDir

_HF_URL = re.compile(r"^hf://(?P<type>datasets|models)/(?P<repo>[^@]+)@(?P<revision>[^/]+)/(?P<path>.+)$")
DEFAULT_REVISION = "main"
"""The branch a hub item is fetched at (as huggingface_hub and `datasets` default to)."""
_MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "tokenizer*"]
FREE_SPACE_MARGIN = 1.05
"""The cache must have this much more free space than the planned download."""


@dataclass
class Planned:
    """One item's files before downloading."""
    item: Item
    """What is fetched."""
    files: list[dict] = field(default_factory=list)
    """{source, bytes, path (local files), repo/revision/name (hub files)}, in read order."""
    revision: str = "local"
    """The hub revision (commit) the files come from, or "local"."""
    bytes_planned: int = 0
    """Bytes expected to be downloaded (0 for local files)."""
    note: str = ""
    """How the size was arrived at, when it is an estimate."""


def use_cluster_cache(cluster: str | None) -> str:
    """Points HF_HOME at the cluster profile's cache (before huggingface_hub is imported)."""
    if cluster:
        from occi.slurm.submit import load_profile  # loads pyarrow: only when used

        profile, _ = load_profile(cluster)
        if profile.env.get("HF_HOME"):
            os.environ["HF_HOME"] = profile.env["HF_HOME"]
    return os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")


def fetch(cfg, run: RunDir, cluster: str | None = None, dry_run: bool = False, items: list[Item] | None = None,
          log=print) -> dict:
    """Fetches what is missing; returns {items, bytes, downloaded, cache}."""
    cache = use_cluster_cache(cluster)
    run = RunDir.of(run)
    manifest = Manifest.read(run) or Manifest()
    manifest.cache = cache
    items = needed_items(cfg) if items is None else items
    todo = []
    for item in items:
        problems = manifest.problems([item])
        if problems:
            todo.append(item)
            if manifest.entry(item) is not None:
                log(f"  {problems[0]}; fetching it again")
    log(f"occi fetch: {len(items)} item(s) for run {cfg.name}, {len(items) - len(todo)} already fetched; cache {cache}")
    plans, failed = [], []
    for item in todo:  # one item that cannot be planned does not stop the others
        try:
            plans.append(plan_item(item))
        except OcciError as err:
            failed.append(str(err))
    total = sum(p.bytes_planned for p in plans)
    for p in plans:
        log(f"  {p.item.key:<60} {_size(p.bytes_planned):>10}  {len(p.files)} file(s) {p.note}")
    log(f"  total to download: {_size(total)}")
    Path(cache).mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache).free
    if total * FREE_SPACE_MARGIN > free:
        raise OcciError(f"{cache}: {_size(free)} free, the fetch needs {_size(total)}; free space or point HF_HOME "
                        "(or the profile's env HF_HOME) at a larger file system")
    if dry_run:
        if failed:
            raise OcciError(f"{len(failed)} item(s) cannot be fetched: {failed[0]}")
        return {"items": len(items), "bytes": total, "downloaded": 0, "cache": cache, "dry_run": True}
    downloaded = 0
    for p in plans:
        started = time.monotonic()
        try:
            entry = download(p)
        except OcciError as err:
            failed.append(str(err))
            continue
        manifest.items[p.item.key] = entry
        manifest.write(run)
        downloaded += entry["bytes"] if entry["revision"] != "local" else 0
        log(f"  fetched {p.item.key}: {len(entry['files'])} file(s), {_size(entry['bytes'])} "
            f"in {time.monotonic() - started:.0f} s")
    if not plans:
        manifest.write(run)
    log(f"manifest: {run.fetch_manifest}")
    if failed:
        raise OcciError(f"{len(failed)} of {len(todo)} item(s) could not be fetched (the others are in "
                        f"{run.fetch_manifest}; run the same command again to retry): {failed[0]}"
                        + (f"; and {len(failed) - 1} more" if len(failed) > 1 else ""))
    return {"items": len(items), "bytes": total, "downloaded": downloaded, "cache": cache, "dry_run": False}


# ---------------------------------------------------------------------------- planning

def plan_item(item: Item) -> Planned:
    """The item's files and sizes (no download); network errors become one-line OcciErrors."""
    planners = {"dataset": _plan_dataset, "model": lambda i: _plan_repo(i, "model"),
                "eval": lambda i: _plan_repo(i, "dataset"), "files": _plan_files, "langid": _plan_url}
    return _one_line(item, planners[item.kind])


def _plan_dataset(item: Item) -> Planned:
    """A corpus source's files for its subset and split, as `datasets` resolves them; with a
    limit, only the leading files that hold that many rows (estimated from the first file)."""
    import datasets  # loads datasets: only when used

    data_files = [local_if_exists(item.base_dir, f) for f in item.data_files] or None
    try:
        builder = datasets.load_dataset_builder(item.id, item.subset, data_files=data_files)
        resolved = [str(f) for f in builder.config.data_files[item.split]]
    except Exception as err:  # datasets raises many kinds for "cannot open"
        raise OcciError(f"{item.key}: cannot resolve the dataset's files: {str(err).splitlines()[0] if str(err) else type(err).__name__} "
                        "(check the id, subset and split, the network, and HF_TOKEN for gated datasets)") from None
    unreadable = [f for f in resolved if not f.endswith((".parquet", ".jsonl", ".json", ".jsonl.gz", ".json.gz",
                                                         ".jsonl.zst", ".json.zst"))]
    if unreadable:
        raise OcciError(f"{item.key}: {unreadable[0]} is neither Parquet nor JSON lines; occi reads fetched "
                        "files of those formats only")
    files = []
    for source in resolved:
        match = _HF_URL.match(source)
        if match:
            files.append({"source": source, "repo": match["repo"], "revision": match["revision"], "name": match["path"]})
        else:
            files.append({"source": source, "path": str(Path(source).resolve()), "bytes": Path(source).stat().st_size})
    plan = Planned(item, files)
    remote = [f for f in files if "repo" in f]
    if remote:
        plan.revision = remote[0]["revision"]
        _remote_sizes(remote, "dataset")
        if item.limit is not None and remote[0]["name"].endswith(".parquet"):
            rows = _remote_parquet_rows(remote[0])
            if rows:
                plan.note = f"(about {math.ceil(item.limit / rows)} of {len(files)} files for {item.limit:,} rows)"
                plan.files = files[:max(1, math.ceil(item.limit / rows))] + [
                    dict(f, optional=True) for f in files[math.ceil(item.limit / rows):]]
        plan.bytes_planned = sum(f.get("bytes", 0) for f in plan.files if "repo" in f and not f.get("optional"))
    return plan


def _remote_sizes(files: list[dict], repo_type: str) -> None:
    """Adds each hub file's size and the hub's hash of it (sha256 for LFS files, else the git blob id)."""
    from huggingface_hub import HfApi  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

    by_repo: dict[tuple[str, str], list[dict]] = {}
    for f in files:
        by_repo.setdefault((f["repo"], f["revision"]), []).append(f)
    for (repo, revision), group in by_repo.items():
        infos = HfApi().get_paths_info(repo, [f["name"] for f in group], repo_type=repo_type, revision=revision)
        known = {info.path: _hub_hashes(info) for info in infos}
        for f in group:
            f.update(known.get(f["name"], {"bytes": 0}))


def _hub_hashes(info) -> dict:
    """{bytes, sha256 | blob_id} of one entry of the hub's tree or paths-info."""
    lfs = getattr(info, "lfs", None)
    found = {"bytes": getattr(info, "size", 0) or 0}
    if lfs is not None and getattr(lfs, "sha256", None):
        found["sha256"] = lfs.sha256
    elif getattr(info, "blob_id", None):
        found["blob_id"] = info.blob_id
    return found


@lru_cache(maxsize=64)
def _hub_tree(repo: str, repo_type: str, revision: str) -> tuple[str, dict[str, dict]]:
    """The commit a revision names and {path: {bytes, sha256 | blob_id}} of every file in it
    (once per fetch: EU20's tasks of 20 languages share five repositories)."""
    from huggingface_hub import HfApi  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it
    from huggingface_hub.hf_api import RepoFile  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

    api = HfApi()
    commit = api.repo_info(repo, repo_type=repo_type, revision=revision).sha or revision
    files = {entry.path: _hub_hashes(entry)
             for entry in api.list_repo_tree(repo, repo_type=repo_type, revision=commit, recursive=True)
             if isinstance(entry, RepoFile)}
    return commit, files


def _remote_parquet_rows(f: dict) -> int | None:
    """Rows of a hub Parquet file from its footer (a few range requests), or None."""
    try:
        import pyarrow.parquet as pq  # loads pyarrow: only when used
        from huggingface_hub import HfFileSystem  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

        with HfFileSystem().open(f"datasets/{f['repo']}@{f['revision']}/{f['name']}", "rb") as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    except Exception:  # an estimate only: without it every file is planned
        return None


def _plan_repo(item: Item, repo_type: str) -> Planned:
    """A base model (its weights, config and tokenizer files) at the commit its revision names, or an
    evaluation dataset at the default branch's commit."""
    local = Path(item.id).expanduser()
    if local.is_dir():
        files = [{"source": str(p), "path": str(p.resolve()), "bytes": p.stat().st_size}
                 for p in sorted(local.rglob("*")) if p.is_file()]
        return Planned(item, files)
    try:
        commit, tree = _hub_tree(item.id, repo_type, item.revision or DEFAULT_REVISION)
    except Exception as err:
        raise OcciError(f"{item.key}: cannot read the {repo_type}'s file list: {str(err).splitlines()[0]} "
                        "(check the id, the network, and HF_TOKEN for gated repositories)") from None
    names = sorted(tree)
    if repo_type == "model":
        names = [name for name in names if _matches(name, _MODEL_FILES)]
        note = ""
    else:  # the subset's own files cannot be told apart before `datasets` prepares them
        note = "(at most: the whole repository)"
    plan = Planned(item, [{"source": name, "repo": item.id, "revision": commit, "name": name, **tree[name]}
                          for name in names], revision=commit, note=note)
    plan.bytes_planned = sum(tree[name]["bytes"] for name in names)
    return plan


def _plan_files(item: Item) -> Planned:
    """The remote data files of one evaluation task: `hf://` files (glob patterns matched against
    the repository's tree) and URLs."""
    files, revisions = [], set()
    for source in item.data_files:
        hub = parse_hf_url(source)
        if hub is None:
            files.append({"source": source, "url": source, "bytes": _url_size(source)})
            continue
        repo_type, repo, revision, pattern = hub
        commit, tree = _hub_tree(repo, repo_type, revision)
        names = [name for name in sorted(tree) if _glob_match(name, pattern)]
        if not names:
            raise OcciError(f"{item.key}: {source} matches no file in {repo_type} {repo} at {commit}")
        revisions.add(commit)
        files += [{"source": source, "repo": repo, "repo_type": repo_type, "revision": commit, "name": name,
                   **tree[name]} for name in names]
    return Planned(item, files, revision=",".join(sorted(revisions)) or "url",
                   bytes_planned=sum(f["bytes"] for f in files))


def parse_hf_url(url: str) -> tuple[str, str, str, str] | None:
    """(repo type, repo id, revision, path in the repository) of an `hf://` data file, or None."""
    match = re.match(r"^hf://(?:(?P<type>datasets|models|spaces)/)?(?P<org>[^/@]+)/(?P<name>[^/@]+)"
                     r"(?:@(?P<revision>[^/]+))?/(?P<path>.+)$", url)
    if not match:
        return None
    repo_type = {"datasets": "dataset", "spaces": "space"}.get(match["type"] or "", "model")
    return repo_type, f"{match['org']}/{match['name']}", match["revision"] or DEFAULT_REVISION, match["path"]


def _glob_match(name: str, pattern: str) -> bool:
    """fnmatch within one folder level, as HfFileSystem's glob matches `*`."""
    return name.count("/") == pattern.count("/") and fnmatchcase(name, pattern)


def _url_size(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as response:
            return int(response.headers.get("Content-Length") or 0)
    except (OSError, ValueError):
        return 0  # the download itself reports an unreachable URL


def _plan_url(item: Item) -> Planned:
    size = _url_size(item.id)
    return Planned(item, [{"source": item.id, "bytes": size}], revision=item.id, bytes_planned=size)


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch(Path(name).name, p) or fnmatch(name, p) for p in patterns)


# ---------------------------------------------------------------------------- downloading

def download(plan: Planned) -> dict:
    """Downloads a planned item (resumable) and returns its manifest entry."""
    item = plan.item
    entry = {"kind": item.kind, "id": item.id, "subset": item.subset, "split": item.split,
             "revision": plan.revision, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "complete": False}
    downloaders = {"dataset": _download_dataset, "model": _download_model, "eval": _download_eval,
                   "files": _download_files, "langid": _download_url}
    files = _one_line(item, lambda _: downloaders[item.kind](plan))
    entry.update(files=files, bytes=sum(f["bytes"] for f in files), complete=True)
    return entry


def _download_dataset(plan: Planned) -> list[dict]:
    """Files in read order until the limit's rows are there (all of them without a limit)."""
    limit, rows_so_far, out = plan.item.limit, 0, []
    for f in plan.files:
        if limit is not None and rows_so_far >= limit:
            break
        if "repo" in f:
            path = hub_file(dict(f, repo_type="dataset"), plan.item.key)
            rows = count_rows(path)
            out.append(integrity.record(path, rows=rows))
        else:
            path = f["path"]
            rows = count_rows(path)
            out.append({"path": str(path), "bytes": Path(path).stat().st_size, "rows": rows})
        rows_so_far += rows if rows is not None else 0
        if rows is None:
            limit = None  # rows unknown: the limit cannot be honoured by file, take every file
    return out


def count_rows(path: str | Path) -> int | None:
    """Documents in a Parquet or JSON-lines file."""
    path = str(path)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq  # loads pyarrow: only when used

        return pq.ParquetFile(path).metadata.num_rows

    try:
        with open_binary(path) as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def _download_model(plan: Planned) -> list[dict]:
    """The planned files, each checked against the hub's size and hash, into the hub cache where
    `snapshot_download` finds them offline (downloaded by the revision's name, so that huggingface_hub
    writes the ref from that name to the commit, which an offline snapshot of the same revision reads)."""
    if plan.revision == "local":
        return [{"path": f["path"], "bytes": f["bytes"]} for f in plan.files]
    ref = plan.item.revision or DEFAULT_REVISION
    return [integrity.record(hub_file(dict(f, repo_type="model", ref=ref), plan.item.key)) for f in plan.files]


def hub_file(f: dict, what: str) -> str:
    """Downloads one hub file (resumable) and checks it; a cached copy that fails the check
    (truncated, changed) is downloaded anew once."""
    from huggingface_hub import hf_hub_download  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

    def get(force: bool) -> str:
        return hf_hub_download(f["repo"], f["name"], repo_type=f.get("repo_type", "dataset"),
                               revision=f.get("ref") or f["revision"], force_download=force)

    path = get(False)
    if integrity.mismatch(path, f):
        path = get(True)
    integrity.verified(path, f, what)
    return path


def _download_eval(plan: Planned) -> list[dict]:
    """lm-eval reads its datasets with `datasets.load_dataset(path, name)`: preparing them once
    here puts them into the datasets cache it reads offline."""
    import datasets  # loads datasets: only when used

    try:
        loaded = datasets.load_dataset(plan.item.id, plan.item.subset)
    except Exception as err:
        raise OcciError(f"{plan.item.key}: cannot download: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    paths = sorted({c["filename"] for split in loaded.values() for c in split.cache_files})
    return [integrity.record(p) for p in paths]


def _download_url(plan: Planned) -> list[dict]:
    from occi.corpora.langid import resolve_model  # loads numba: only when used

    path = resolve_model(LangIdConfig(model=plan.item.id, cache_dir=plan.item.base_dir or None))
    if plan.files[0]["bytes"] and path.stat().st_size != plan.files[0]["bytes"]:
        path.unlink()  # a truncated copy from an older download: fetch it anew
        path = resolve_model(LangIdConfig(model=plan.item.id, cache_dir=plan.item.base_dir or None))
    integrity.verified(path, {"bytes": plan.files[0]["bytes"]}, plan.item.key)
    return [integrity.record(path)]


def _download_files(plan: Planned) -> list[dict]:
    """An evaluation task's remote data files: hub files into the hub cache, URLs into
    $HF_HOME/occi-urls/; each recorded with the pattern or URL it stands for."""
    out = []
    for f in plan.files:
        path = hub_file(f, plan.item.key) if "repo" in f else url_file(f, plan.item.key)
        out.append(integrity.record(path, source=f["source"]))
    return out


def url_file(f: dict, what: str) -> Path:
    """Downloads a URL once (to a partial file, then renamed) into the cache."""
    from huggingface_hub.constants import HF_HOME  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

    folder = Path(os.environ.get("HF_HOME") or HF_HOME) / "occi-urls" / hashlib.sha256(f["url"].encode()).hexdigest()[:16]
    target = folder / (Path(f["url"].split("?")[0]).name or "data")
    if target.is_file() and integrity.mismatch(target, f):
        target.unlink()
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".part{os.getpid()}")
        try:
            urllib.request.urlretrieve(f["url"], partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    integrity.verified(target, f, what)
    return target


def _one_line(item: Item, work):
    try:
        return work(item)
    except OcciError:
        raise
    except Exception as err:  # HTTP, file system and library errors of one item
        first = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        raise OcciError(f"{item.key}: {type(err).__name__}: {first}") from None


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1000
    return str(count)
