"""`occi doctor CONFIG [--cluster NAME]`: can this node run this run as the profile assumes?

Checks, in order: software versions and whether they fit together; the GPUs; what the cluster
profile assumes (cores and GPUs per rank, SMT, network interfaces, rendezvous host); the
all-reduce bandwidth across the node's GPUs; the run directory's write and read speed and the
time a checkpoint would take; free disk; the hub (or, offline, the fetch manifest) and a token;
whether the training layout's predicted peak memory fits the profile's GPUs (occi/train/memory.py);
then a tiny training with a checkpoint, a resume and an export check, and a few steps of the
config's model for tokens/s and MFU. A table on the console, <run>/doctor.json, and exit code 1
when something would break the run. GPU checks are skipped on a CPU-only machine, with why.
"""
from __future__ import annotations

import os
import platform
import socket
import time

from occi.errors import OcciError
from occi.fsutil import atomic_write_json
from occi.preflight import node, smoke, storage
from occi.preflight.report import Check, as_json, guarded, table
from occi.rundir import RunDir
from occi.slurm.config import load_profile


def doctor(cfg, run: RunDir, cluster: str | None = None, quick: bool = False, log=print) -> dict:
    import torch  # loads torch: only when used

    profile = None
    if cluster:
        profile, _ = load_profile(cluster)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    ranks = gpus or cfg.train.world_size
    checks: list[Check] = []

    def step(name: str, check) -> None:
        log(f"doctor: {name} ...", flush=True)
        started = time.monotonic()
        found = guarded(name, check)
        found[-1].seconds = round(time.monotonic() - started, 2)
        checks.extend(found)

    step("software", node.software)
    step("gpus", lambda: node.gpus(cfg.train.precision))
    if profile is not None:
        step("profile", lambda: node.profile_assumptions(profile, ranks))
        step("memory", lambda: memory_fit(cfg, run, profile, cluster))
    else:
        step("network interfaces", lambda: node.interfaces(None))
    step("all-reduce", node.allreduce_bandwidth)
    step("run dir speed", lambda: storage.filesystem_speed(run, 1024 if gpus else 32))
    speed = checks[-1]
    step("checkpoint time", lambda: storage.checkpoint_time(cfg, speed, profile))
    step("free disk", lambda: storage.free_disk(cfg, run))
    step("hub", lambda: storage.hub(cfg, run))
    if quick:
        checks.append(Check("training", "skip", "-", "--quick: the tiny training and the throughput test were not run"))
    else:
        step("tiny training", lambda: smoke.tiny_training(cfg, run, gpus))
        step("throughput", lambda: smoke.throughput(cfg, run, gpus))
    context = {"host": socket.gethostname(), "platform": platform.platform(), "cluster": cluster,
               "slurm_job": os.environ.get("SLURM_JOB_ID"), "config": cfg.name}
    report = as_json(checks, context)
    atomic_write_json(run.doctor_report, report)
    log("")
    log(table(checks))
    verdict = (f"{len(report['failed'])} check(s) failed: {', '.join(report['failed'])}; the run would break here"
               if report["failed"] else "nothing found that would break the run")
    log(f"\ndoctor: {verdict}; report {run.doctor_report}")
    return report


def memory_fit(cfg, run: RunDir, profile, cluster: str) -> Check:
    """The training layout's predicted peak memory per GPU against the profile's GPU memory."""
    from occi.slurm.estimate import memory_refusal  # loads pyarrow: only when used

    if not profile.gpu_memory_gib:
        return Check("memory", "skip", "-", "the profile states no gpu_memory_gib")
    try:
        refusal = memory_refusal(cfg, run, profile, cluster)
    except OcciError as error:
        return Check("memory", "skip", "-", str(error))
    if refusal:
        shortfall, fix = refusal
        return Check("memory", "fail", "does not fit", shortfall, fix=fix)
    return Check("memory", "ok", f"fits {profile.gpu_memory_gib:g} GiB GPUs (see `occi plan`)")
