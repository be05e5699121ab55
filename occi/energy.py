"""Energy and device-hours of a job, measured where the machine lets us, recorded into the run.

Each GPU job (training, evaluation) appends one line to <run>/energy.jsonl: how long it ran, on how
many devices, its CPU time, and the energy its devices used, read from

- the GPUs' own energy counters through NVML (the driver's libnvidia-ml, loaded with ctypes: no
  extra package; nvmlDeviceGetTotalEnergyConsumption, millijoules since the driver loaded, Volta
  and newer), for the devices this job sees;
- else the CPU packages' RAPL counters (/sys/class/powercap/intel-rapl:N/energy_uj) when readable;
- else nothing, and the line says "not measured" and why; never an estimate posing as a measurement.

One process per node records (local rank 0, or a process outside torchrun): NVML and RAPL count the
whole node's devices, so every node's line is its own share. codecarbon is not used: its energy
for GPUs comes from the same NVML counters, and for CPUs it falls back to a TDP guess.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import socket
import time
from pathlib import Path
from typing import Iterator

RAPL = Path("/sys/class/powercap")


class _Nvml:
    """The NVML energy counters of the devices this process may use."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        if self.lib.nvmlInit_v2() != 0:
            raise OSError("nvmlInit failed")
        count = ctypes.c_uint()
        if self.lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            raise OSError("nvmlDeviceGetCount failed")
        indices = list(range(count.value))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        if visible and all(part.strip().isdigit() for part in visible.split(",")):
            # numeric CUDA_VISIBLE_DEVICES: indices as NVML numbers them (PCI order) on SLURM nodes
            indices = [i for i in indices if str(i) in {p.strip() for p in visible.split(",")}]
        self.handles = []
        for index in indices:
            handle = ctypes.c_void_p()
            if self.lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)) == 0:
                self.handles.append(handle)
        if not self.handles or self.read() is None:
            raise OSError("no device with an energy counter")

    def read(self) -> float | None:
        """Joules used by all devices since the driver loaded, or None when a device has no counter."""
        total = 0
        for handle in self.handles:
            value = ctypes.c_ulonglong()
            if self.lib.nvmlDeviceGetTotalEnergyConsumption(handle, ctypes.byref(value)) != 0:
                return None
            total += value.value
        return total / 1000.0


class _Rapl:
    """The CPU packages' RAPL energy counters (top-level intel-rapl:N domains), when readable."""

    def __init__(self) -> None:
        self.domains = sorted(p for p in RAPL.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not self.domains:
            raise OSError(f"no RAPL domains under {RAPL}")
        self.ranges = [int((d / "max_energy_range_uj").read_text()) for d in self.domains]
        self.start = self._raw()

    def _raw(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def since_start(self) -> float:
        """Joules since this meter started; a counter that wrapped once is unwrapped."""
        joules = 0.0
        for before, after, span in zip(self.start, self._raw(), self.ranges):
            joules += ((after - before) % (span + 1)) / 1e6
        return joules


def _counter():
    """(kind, method, read-since-start function, devices) of the best counter this machine has, or
    (None, why, None, 0)."""
    try:
        nvml = _Nvml()
        start = nvml.read()
        return "gpu", "NVML energy counters (nvmlDeviceGetTotalEnergyConsumption)", \
            lambda: nvml.read() - start, len(nvml.handles)
    except (OSError, AttributeError) as err:
        gpu_reason = f"no GPU energy counter ({err})"
    try:
        rapl = _Rapl()
        return "cpu", f"RAPL CPU package counters ({len(rapl.domains)} package(s); GPUs: {gpu_reason})", \
            rapl.since_start, len(rapl.domains)
    except (OSError, ValueError) as err:
        return None, f"not measured: {gpu_reason}; no readable RAPL counter ({err})", None, 0


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _records_here() -> bool:
    """One process per node records: local rank 0 under torchrun, or any process outside it."""
    return os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")) == "0"


@contextlib.contextmanager
def meter(energy_file: Path, job: str, gpus: int | None = None) -> Iterator[None]:
    """Measures the enclosed work and appends its line to `energy_file`. `gpus`: the devices the
    job uses on this node, when known (else what the counter sees; 0 on a CPU-only machine)."""
    if not _records_here():
        yield
        return
    kind, method, since_start, devices = _counter()
    started, cpu_before = time.time(), _cpu_seconds()
    ok = False
    try:
        yield
        ok = True
    finally:
        seconds = time.time() - started
        joules = since_start() if since_start else None
        used_gpus = gpus if gpus is not None else (devices if kind == "gpu" else 0)
        record = {"job": job, "host": socket.gethostname(), "slurm_job": os.environ.get("SLURM_JOB_ID"),
                  "started": started, "seconds": seconds, "completed": ok,
                  "gpus": used_gpus, "gpu_hours": used_gpus * seconds / 3600,
                  "cpu_hours": (_cpu_seconds() - cpu_before) / 3600,
                  "energy_kwh": joules / 3.6e6 if joules is not None else None,
                  "measured": kind, "method": method}
        _append(Path(energy_file), record)


def _append(path: Path, record: dict) -> None:
    """One line, written with a single O_APPEND write: lines of jobs finishing together never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read(energy_file: Path) -> list[dict]:
    """The recorded lines (a line cut short by a crash is skipped)."""
    path = Path(energy_file)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def totals(records: list[dict]) -> dict[str, dict]:
    """Per job kind: jobs, hours, GPU-hours, CPU-hours, measured energy (None when any job of that
    kind was not measured) and how it was measured."""
    out: dict[str, dict] = {}
    for record in records:
        entry = out.setdefault(record["job"], {"jobs": 0, "hours": 0.0, "gpu_hours": 0.0, "cpu_hours": 0.0,
                                               "energy_kwh": 0.0, "methods": set(), "unmeasured": 0})
        entry["jobs"] += 1
        entry["hours"] += record["seconds"] / 3600
        entry["gpu_hours"] += record["gpu_hours"]
        entry["cpu_hours"] += record["cpu_hours"]
        if record["energy_kwh"] is None:
            entry["unmeasured"] += 1
        else:
            entry["energy_kwh"] += record["energy_kwh"]
        entry["methods"].add(record["method"])
    for entry in out.values():
        entry["methods"] = sorted(entry["methods"])
        if entry["unmeasured"]:
            entry["energy_kwh"] = None if entry["unmeasured"] == entry["jobs"] else entry["energy_kwh"]
    return out
