"""The doctor's checks of the node itself: software versions, GPUs, what the cluster profile
assumes (cores and GPUs per rank, SMT, the network interfaces NCCL and gloo use, the rendezvous
host), and the all-reduce bandwidth between the node's GPUs."""
from __future__ import annotations

import importlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from occi.preflight.report import Check
from occi.slurm.config import ClusterProfile, parse_cpu_list

TESTED_MEGATRON = "0.16.1"
"""The megatron-core release occi's training and export are tested with."""
NOMINAL_BUSBW_GBS = {"H200": 450.0, "H100": 450.0, "A100": 300.0, "MI250X": 100.0, "MI300X": 448.0}
"""Nominal GPU-to-GPU bandwidth inside a node, GB/s in one direction (NVLink 4: 450, NVLink 3:
300, MI300X Infinity Fabric 7 x 64; MI250X GCD pairs vary from 50 to 200: 100 is a middle)."""


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def gpu_hardware_present() -> bool:
    """A GPU driver's device files exist, whether or not torch can use them."""
    return Path("/dev/nvidia0").exists() or Path("/dev/kfd").exists()


def software() -> list[Check]:
    import torch  # loads torch: only when used

    checks = [Check("python", "ok", platform.python_version(), sys.executable)]
    cuda, hip = torch.version.cuda, getattr(torch.version, "hip", None)
    build = f"CUDA {cuda}" if cuda else f"ROCm {hip}" if hip else "CPU build"
    available = torch.cuda.is_available()
    if gpu_hardware_present() and not available:
        checks.append(Check("torch", "fail", f"{torch.__version__} ({build}), no GPU usable",
                            "the node has GPU device files but torch sees no GPU",
                            fix="install a torch build for this node's CUDA/ROCm driver (the CPU build cannot use GPUs)"))
    else:
        checks.append(Check("torch", "ok", f"{torch.__version__} ({build})", data={"torch": torch.__version__,
                                                                               "cuda": cuda, "hip": hip}))
    if available:
        try:
            nccl = ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else "?"
        except Exception as err:  # RCCL builds differ in what they report
            nccl = f"unknown ({type(err).__name__})"
        checks.append(Check("nccl/rccl", "ok", nccl, data={"nccl": nccl}))
    else:
        checks.append(Check("nccl/rccl", "skip", "-", "no GPU: gloo is used on CPU"))
    found = _version("megatron-core")
    if found is None:
        checks.append(Check("megatron-core", "fail", "not installed", fix="pip install megatron-core==" + TESTED_MEGATRON))
    else:
        try:
            importlib.import_module("megatron.core")
            status, detail = ("ok", "") if found == TESTED_MEGATRON else (
                "warn", f"occi is tested with {TESTED_MEGATRON}")
        except Exception as err:  # an import that fails against this torch
            status, detail = "fail", f"import fails: {type(err).__name__}: {err}"
        checks.append(Check("megatron-core", status, found, detail,
                            fix=f"install megatron-core=={TESTED_MEGATRON} for this torch" if status != "ok" else ""))
    te = _version("transformer-engine") or _version("transformer_engine")
    if te is None:
        checks.append(Check("transformer-engine", "warn" if available else "skip", "not installed",
                            "megatron's local layers are used: slower than TE's fused kernels" if available
                            else "not used on CPU", fix="install Transformer Engine built for this torch and CUDA"
                            if available else ""))
    else:
        try:
            import transformer_engine.pytorch  # noqa: F401  optional: transformer_engine is no core dependency
            checks.append(Check("transformer-engine", "ok", te))
        except Exception as err:  # a TE built for another torch/CUDA fails at import
            checks.append(Check("transformer-engine", "fail", te, f"import fails: {type(err).__name__}: {str(err)[:200]}",
                                fix="reinstall Transformer Engine against this torch and CUDA, or uninstall it"))
    for package in ("transformers", "datasets", "lm-eval"):
        found = _version(package)
        checks.append(Check(package, "ok" if found else "fail", found or "not installed",
                            fix="" if found else f"pip install {package}"))
    return checks


def gpus(precision: str) -> list[Check]:
    import torch  # loads torch: only when used

    if not torch.cuda.is_available():
        return [Check("gpus", "skip", "none", "no GPU visible to torch: GPU checks (bandwidth, bf16, memory) skipped")]
    names, memory, checks = [], [], []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        names.append(props.name)
        memory.append(props.total_memory / 2**30)
    bf16 = torch.cuda.is_bf16_supported()
    summary = f"{len(names)} x {names[0]}, {min(memory):.0f} GiB each, bf16 {'yes' if bf16 else 'no'}"
    status = "fail" if precision in ("auto", "bf16") and not bf16 else "ok"
    checks.append(Check("gpus", status, summary, fix="set train.precision: fp32, or use GPUs with bf16" if status == "fail"
                        else "", data={"count": len(names), "names": names, "memory_gib": memory, "bf16": bf16}))
    return checks


def profile_assumptions(profile: ClusterProfile, ranks: int) -> list[Check]:
    """What the cluster profile assumes about the node, as this job sees it."""
    checks = []
    visible = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    expected = profile.cpus_per_gpu * max(1, ranks)
    per_rank = len(visible) // max(1, ranks)
    status = "ok" if per_rank >= profile.cpus_per_gpu else "warn"
    checks.append(Check("cores per rank", status, f"{len(visible)} cores visible, {per_rank} per rank "
                        f"(profile: {profile.cpus_per_gpu})", f"expected {expected} for {ranks} rank(s)",
                        fix="check --cpus-per-task and --threads-per-core of the job, or cpus_per_gpu of the profile",
                        data={"visible": len(visible), "per_rank": per_rank}))
    smt = _smt_siblings(visible)
    if smt:
        checks.append(Check("smt", "warn" if profile.threads_per_core != 1 else "fail",
                            f"{smt} visible cores share a physical core", "hardware threads count as cores here",
                            fix="set threads_per_core: 1 in the profile (--threads-per-core=1)"))
    if profile.rank_cpus:
        missing = [i for i, text in enumerate(profile.rank_cpus) if not parse_cpu_list(text) <= set(visible)]
        checks.append(Check("rank cpu map", "ok" if not missing else "warn",
                            f"{len(profile.rank_cpus) - len(missing)}/{len(profile.rank_cpus)} ranks' cores allocated",
                            f"ranks without their cores: {missing}" if missing else "",
                            fix="request the whole node (the doctor and training do) or fix rank_cpus"))
    if profile.gpu_request != "none":
        import torch  # loads torch: only when used

        devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        env_list = os.environ.get("CUDA_VISIBLE_DEVICES") or os.environ.get("ROCR_VISIBLE_DEVICES") or ""
        status = "ok" if devices >= profile.gpus_per_node else "fail"
        checks.append(Check("gpus per node", status, f"{devices} visible (profile: {profile.gpus_per_node})",
                            f"visible devices: {env_list or 'all'}",
                            fix="check the job's --gres/--gpus-per-node and the profile's gpus_per_node"))
    checks.append(interfaces(profile))
    if profile.rdzv_host_suffix:
        host = socket.gethostname().split(".")[0] + profile.rdzv_host_suffix
        try:
            address = socket.gethostbyname(host)
            checks.append(Check("rendezvous host", "ok", f"{host} -> {address}"))
        except OSError:
            checks.append(Check("rendezvous host", "fail", f"{host} does not resolve",
                                fix="fix rdzv_host_suffix in the profile"))
    return checks


def _smt_siblings(cpus: list[int]) -> int:
    """How many of `cpus` share a physical core with another of them."""
    shared = 0
    chosen = set(cpus)
    for cpu in cpus:
        path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            siblings = parse_cpu_list(path.read_text().strip())
        except (OSError, ValueError):
            return 0
        if len(siblings & chosen) > 1:
            shared += 1
    return shared


def interfaces(profile: ClusterProfile | None) -> Check:
    """The network interfaces NCCL and gloo are told to use exist on this node."""
    present = sorted(p.name for p in Path("/sys/class/net").iterdir()) if Path("/sys/class/net").exists() else []
    env = {**(profile.env if profile else {}), **os.environ}
    problems, used = [], []
    for variable in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"):
        value = env.get(variable)
        if not value:
            continue
        exact = value.startswith("=") or variable == "GLOO_SOCKET_IFNAME"
        wanted = [w for w in value.lstrip("=^").split(",") if w]
        if value.startswith("^"):
            continue  # an exclusion list cannot be wrong in this way
        matched = [n for n in present if any(n == w if exact else n.startswith(w) for w in wanted)]
        if matched:
            used.append(f"{variable}={value} -> {','.join(matched)}")
        else:
            problems.append(f"{variable}={value} matches none of {', '.join(present) or 'no interfaces'}")
    if problems:
        return Check("network interfaces", "fail", problems[0], "; ".join(problems[1:]),
                     fix="set NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME in the profile's env to an interface of this node")
    if not used:
        return Check("network interfaces", "ok", f"NCCL chooses itself among {', '.join(present)}",
                     data={"interfaces": present})
    return Check("network interfaces", "ok", "; ".join(used), data={"interfaces": present})


def allreduce_bandwidth(megabytes: int = 256) -> Check:
    """busbw of an all-reduce across the node's GPUs (torchrun, NCCL/RCCL), beside the nominal figure."""
    import torch  # loads torch: only when used

    if not torch.cuda.is_available():
        return Check("all-reduce", "skip", "-", "no GPU: the NCCL bandwidth test needs the node's GPUs")
    count = torch.cuda.device_count()
    if count < 2:
        return Check("all-reduce", "skip", "1 GPU", "one GPU: nothing to reduce across")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "allreduce.json"
        result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 f"--nproc-per-node={count}", "-m", "occi.preflight.allreduce", str(out), str(megabytes)],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not out.exists():
            return Check("all-reduce", "fail", "the test did not run", (result.stderr or result.stdout)[-300:],
                         fix="NCCL cannot reduce across this node's GPUs: check NCCL_* variables and the driver")
        measured = json.loads(out.read_text())
    name = torch.cuda.get_device_name()
    nominal = next((v for k, v in NOMINAL_BUSBW_GBS.items() if k in name), None)
    value = f"{measured['busbw_gbs']:.0f} GB/s bus bandwidth ({count} GPUs, {megabytes} MB)"
    status = "ok"
    if nominal:
        value += f"; nominal {nominal:.0f} GB/s"
        status = "ok" if measured["busbw_gbs"] >= 0.5 * nominal else "warn"
    return Check("all-reduce", status, value, "below half the interconnect's nominal figure" if status == "warn" else "",
                 fix="check NCCL_P2P_LEVEL / NVLink state (nvidia-smi topo -m)" if status == "warn" else "",
                 data={**measured, "nominal_gbs": nominal, "gpus": count})
