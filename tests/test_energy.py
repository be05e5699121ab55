"""occi/energy.py: one line per job with hours and measured energy, or "not measured" and why.

This machine has no GPU energy counter; the RAPL path is checked on a powercap tree written here in
the kernel's layout (energy_uj, max_energy_range_uj), including a counter that wraps during the job.
"""
from __future__ import annotations

import json

import pytest

from occi import energy


def _domain(root, name: str, value: int, span: int) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "energy_uj").write_text(f"{value}\n")
    (root / name / "max_energy_range_uj").write_text(f"{span}\n")


def test_rapl_counters_give_the_jobs_energy_even_when_one_wraps(tmp_path, monkeypatch):
    powercap = tmp_path / "powercap"
    _domain(powercap, "intel-rapl:0", 1_000_000, 262_143_328_850)
    _domain(powercap, "intel-rapl:1", 262_143_000_000, 262_143_328_850)  # near its wrap
    _domain(powercap, "intel-rapl:0:0", 5, 100)  # a sub-domain (core): inside package 0, not added again
    monkeypatch.setattr(energy, "RAPL", powercap)
    monkeypatch.setattr(energy, "_Nvml", lambda: (_ for _ in ()).throw(OSError("no NVML here")))
    out = tmp_path / "energy.jsonl"
    with energy.meter(out, "train"):
        sum(i * i for i in range(200_000))
        (powercap / "intel-rapl:0" / "energy_uj").write_text("3001000000\n")  # +3000 J
        (powercap / "intel-rapl:1" / "energy_uj").write_text("671149\n")  # wrapped: +1,000,000 uJ
    (record,) = energy.read(out)
    assert record["measured"] == "cpu" and record["method"].startswith("RAPL CPU package counters (2 package(s)")
    assert record["energy_kwh"] == pytest.approx((3000 + 1.0) / 3.6e6)
    assert record["gpus"] == 0 and record["gpu_hours"] == 0 and record["seconds"] > 0 and record["cpu_hours"] > 0


def test_without_counters_the_line_says_not_measured(tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "RAPL", tmp_path / "none")
    monkeypatch.setattr(energy, "_Nvml", lambda: (_ for _ in ()).throw(OSError("no NVML here")))
    out = tmp_path / "energy.jsonl"
    with energy.meter(out, "eval"):
        pass
    with pytest.raises(RuntimeError), energy.meter(out, "eval"):  # a failed job is recorded too
        raise RuntimeError("boom")
    records = energy.read(out)
    assert [r["completed"] for r in records] == [True, False]
    assert all(r["energy_kwh"] is None and r["method"].startswith("not measured: no GPU energy counter (no NVML here)")
               for r in records)
    totals = energy.totals(records)["eval"]
    assert totals["jobs"] == 2 and totals["energy_kwh"] is None and totals["unmeasured"] == 2
    out.write_text(out.read_text() + '{"job": "ev')  # a line cut short by a crash is skipped
    assert len(energy.read(out)) == 2
    json.loads(out.read_text().splitlines()[0])


def test_only_one_process_per_node_records(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    with energy.meter(tmp_path / "energy.jsonl", "train"):
        pass
    assert not (tmp_path / "energy.jsonl").exists()
