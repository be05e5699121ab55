"""The doctor's checks of storage and the hub: the run directory's write and read speed, the
time a checkpoint of the config's model takes, free space for the run's outputs, and whether the
hub, the configured datasets and a token are there (or, offline, the fetch manifest)."""
from __future__ import annotations

import os
import shutil
import time
import urllib.request

from occi.corpora.sources import expand_sources
from occi.hub import is_local, is_offline, Manifest
from occi.preflight.manifest import needed_items
from occi.preflight.report import Check
from occi.rundir import RunDir

BYTES_PER_PARAMETER_CHECKPOINT = {"bf16": 2 + 4 + 8, "fp32": 4 + 8}
"""A checkpoint holds the weights, and with mixed precision fp32 master weights, plus Adam's two moments."""
BYTES_PER_DOCUMENT = 4_000
"""A rough size of one web document in Parquet, for the corpora's share of the free-space check."""


def precision_of(cfg) -> str:
    import torch  # loads torch: only when used

    if cfg.train.precision != "auto":
        return cfg.train.precision
    return "bf16" if torch.cuda.is_available() else "fp32"


def model_parameters(cfg) -> int | None:
    if cfg.model is None:
        return None
    return cfg.model.parameters(cfg.tokenizer.vocab_size)


def checkpoint_bytes(cfg) -> int:
    params = model_parameters(cfg) or 0
    return params * BYTES_PER_PARAMETER_CHECKPOINT[precision_of(cfg)]


def filesystem_speed(run: RunDir, megabytes: int) -> Check:
    """Writes `megabytes` to the run directory's file system (fsync), drops it from the page cache
    and reads it back."""
    folder = run.scratch("doctor-io")
    path = folder / "speed.bin"
    block = os.urandom(4 * 2**20)
    blocks = max(1, megabytes // 4)
    try:
        started = time.perf_counter()
        with open(path, "wb") as handle:
            for _ in range(blocks):
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        write_s = time.perf_counter() - started
        with open(path, "rb") as handle:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            started = time.perf_counter()
            while handle.read(16 * 2**20):
                pass
            read_s = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    size = blocks * len(block)
    write, read = size / write_s / 1e9, size / max(read_s, 1e-9) / 1e9
    return Check("run dir speed", "ok", f"write {write:.2f} GB/s, read {read:.2f} GB/s ({size / 1e6:.0f} MB)",
                 str(run.root), data={"write_gbs": write, "read_gbs": read, "bytes": size})


def checkpoint_time(cfg, speed: Check, profile=None) -> Check:
    if cfg.model is None:
        return Check("checkpoint time", "skip", "-", "the config has no model")
    size = checkpoint_bytes(cfg)
    write = speed.data.get("write_gbs") or 0
    if not write:
        return Check("checkpoint time", "skip", "-", "the write speed is unknown")
    seconds = size / (write * 1e9)
    value = f"about {seconds:.0f} s for {size / 1e9:.1f} GB at this node's write speed"
    limit = profile.signal_seconds if profile else None
    if limit and seconds > 0.8 * limit:
        return Check("checkpoint time", "warn", value, f"the profile leaves {limit} s between USR1 and the time limit",
                     fix="raise signal_seconds in the profile (or write checkpoints more often)",
                     data={"seconds": seconds, "bytes": size})
    return Check("checkpoint time", "ok", value, "one node writing; several nodes write their shares in parallel",
                 data={"seconds": seconds, "bytes": size})


def expected_output_bytes(cfg) -> dict[str, int]:
    """A rough budget of what the run will write."""
    params = model_parameters(cfg) or 0
    budget = {"checkpoints": (cfg.train.keep_last + 1) * checkpoint_bytes(cfg), "hf export": params * 4}
    documents = sum(s.limit or 0 for s in expand_sources(cfg.corpora, cfg.languages) if s.kind == "hub")
    budget["corpora + data"] = 2 * documents * BYTES_PER_DOCUMENT
    return budget


def free_disk(cfg, run: RunDir) -> Check:
    budget = expected_output_bytes(cfg)
    need = sum(budget.values())
    where = run.root if run.root.exists() else next(p for p in run.root.parents if p.exists())
    free = shutil.disk_usage(where).free
    parts = ", ".join(f"{k} {v / 1e9:.1f} GB" for k, v in budget.items())
    value = f"{free / 1e9:.1f} GB free, the run needs about {need / 1e9:.1f} GB"
    if free < need:
        return Check("free disk", "fail", value, parts, fix=f"free space on {where} or put the run on a larger "
                     "file system (--run-dir)", data={"free": free, "need": need})
    return Check("free disk", "ok", value, parts, data={"free": free, "need": need})


def hub(cfg, run: RunDir) -> list[Check]:
    """Offline: the fetch manifest covers every item. Online: the hub and each dataset answer."""
    items = needed_items(cfg)
    checks = [_token()]
    if is_offline():
        if not items:
            checks.append(Check("hub items", "ok", "offline; the run reads nothing from the hub"))
            return checks
        manifest = Manifest.read(run)
        problems = [f"{i.key} was not fetched" for i in items] if manifest is None else manifest.problems(items)
        if problems:
            checks.append(Check("hub items", "fail", f"offline; {len(problems)} of {len(items)} items missing",
                                "; ".join(problems[:3]), fix=f"run `occi fetch {run.config_file} --run-dir {run.root}` "
                                "on a login node (with --cluster for the cluster's cache)"))
        else:
            checks.append(Check("hub items", "ok", f"offline; all {len(items)} items in {run.fetch_manifest.name}"))
        return checks
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=10):
            pass
        checks.append(Check("hub", "ok", f"{endpoint} reachable"))
    except OSError as err:
        checks.append(Check("hub", "fail" if items else "warn", f"{endpoint} unreachable", str(err)[:200],
                            fix="fetch on a machine with internet (`occi fetch`) and run with HF_HUB_OFFLINE=1"))
        return checks
    from huggingface_hub import HfApi  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it


    for item in items:
        if item.kind == "langid" or is_local(item):
            continue
        try:
            if item.kind == "model":
                HfApi().model_info(item.id, timeout=20)
            else:
                HfApi().dataset_info(item.id, timeout=20)
            checks.append(Check(f"hub {item.kind}", "ok", f"{item.id} {item.subset or ''}".strip()))
        except Exception as err:  # gated, missing or unreachable
            checks.append(Check(f"hub {item.kind}", "fail", f"{item.id} not readable", str(err).splitlines()[0][:200],
                                fix="check the id, accept its terms on the hub and set HF_TOKEN"))
    return checks


def _token() -> Check:
    """Whether a hub token is set (never shown)."""
    try:
        from huggingface_hub import get_token  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

        present = bool(get_token())
    except Exception:  # an old huggingface_hub: the environment only
        present = bool(os.environ.get("HF_TOKEN"))
    return Check("hub token", "ok" if present else "warn", "present" if present else "absent",
                 "gated datasets and --push need one", fix="" if present else "export HF_TOKEN or `huggingface-cli login`")
