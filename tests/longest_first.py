"""`--dist loadfile`, longest files first: pytest-xdist hands out whole test files in the order of
their number of tests, so the suite's few long files (a SLURM cluster, whole runs, a vLLM engine)
used to start last and run alone on one core at the end. This scheduler starts the files that took
longest in tests/file_durations.json first (longest processing time first: the other worker takes
the short files meanwhile), and holds test_vllm.py back while .venv-vllm is still being made in
the background, so that no worker waits on pip while other files are left.

It is pytest-xdist's LoadFileScheduling but for the order of its queue and for giving a worker its
next file only when it is down to its last test (xdist gives it at three: the next file would be
committed to a worker whose current file may still run for minutes). tests/conftest.py registers
the hooks below."""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from xdist.scheduler import LoadFileScheduling

import vllm_venv

TABLE = Path(__file__).resolve().parent / "file_durations.json"
"""Seconds per test file, from a whole run (`pytest --file-durations-out FILE`): only the order counts."""


def expected_seconds(table: Path) -> dict[str, float]:
    return {name: float(seconds) for name, seconds in json.loads(table.read_text())["seconds"].items()}


class LongestFirst(LoadFileScheduling):
    """LoadFileScheduling whose queue is in decreasing expected duration."""

    def __init__(self, config, log=None):
        super().__init__(config, log)
        self.seconds = expected_seconds(Path(config.getoption("file_durations")))
        self.ordered = False

    def _order(self) -> None:
        # the queue as xdist made it (most tests first) is the tie-break for files not in the table
        units = sorted(self.workqueue.items(), key=lambda unit: -self.seconds.get(Path(unit[0]).name, 0.0))
        self.workqueue.clear()
        self.workqueue.update(units)
        self.ordered = True

    def _assign_work_unit(self, node) -> None:
        if not self.ordered:  # the queue is complete when xdist first assigns from it
            self._order()
        ready = next((scope for scope in self.workqueue if not self._held_back(scope)), None)
        if ready is not None:
            self.workqueue.move_to_end(ready, last=False)
        super()._assign_work_unit(node)

    @staticmethod
    def _held_back(scope: str) -> bool:
        return Path(scope).name in vllm_venv.NEEDS_IT and vllm_venv.being_made()

    def _reschedule(self, node) -> None:
        # xdist's own but for the threshold: a worker runs a test once it knows the next one, so
        # one pending test is the last moment to give it more without leaving it idle
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        if self._pending_of(self.assigned_work[node]) > 1:
            return
        self._assign_work_unit(node)


class FileDurations:
    """Sums the setup, call and teardown seconds of each test file's reports (on the controller
    under xdist) and writes them in tests/file_durations.json's format."""

    def __init__(self, out: Path):
        self.out, self.seconds = out, defaultdict(float)

    def pytest_runtest_logreport(self, report) -> None:
        self.seconds[Path(report.nodeid.split("::")[0]).name] += report.duration

    def pytest_sessionfinish(self, session) -> None:
        if hasattr(session.config, "workerinput"):  # an xdist worker: the controller writes it
            return
        table = {name: round(seconds, 1) for name, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1])}
        note = f"Measured seconds per test file, {time.strftime('%Y-%m-%d', time.gmtime())}: {' '.join(sys.argv[1:])}"
        self.out.write_text(json.dumps({"note": note, "seconds": table}, indent=1) + "\n", encoding="utf-8")


def pytest_addoption(parser):
    parser.addoption("--file-durations", metavar="FILE", default=str(TABLE),
                     help="seconds per test file, longest started first under --dist loadfile (default: %(default)s)")
    parser.addoption("--file-durations-out", metavar="FILE", default=None,
                     help="write the seconds each test file took to FILE, in --file-durations' format")


def pytest_configure(config):
    out = config.getoption("file_durations_out")
    if out:
        config.pluginmanager.register(FileDurations(Path(out)), "occi-file-durations")


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: `-p no:xdist` leaves it unknown
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadfile":
        return LongestFirst(config, log)
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    # outside pytest-timeout's wrapper: waiting for the background pip is not the test's time
    if item.path.name in vllm_venv.NEEDS_IT:
        vllm_venv.wait()
    return (yield)


def pytest_runtest_setup(item):
    if item.path.name in vllm_venv.NEEDS_IT:
        vllm_venv.check()
