"""SLURM: rendered scripts (golden files, syntax, no injection) and real jobs on a one-node cluster.

The cluster tests need root and Debian's slurm packages: scripts/slurm-start.sh installs and
starts them (CI runs it before the tests and scripts/slurm-stop.sh after).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, occi
from occi import config as config_module
from occi.assets import asset_dir
from occi.configtools import build
from occi.errors import OcciError
from occi.slurm.config import ClusterProfile
from occi.slurm.render import render
from occi.slurm.submit import load_profile, nodes_for, plan

GOLDEN = REPO / "tests" / "golden" / "slurm"
PROFILES = sorted(p.stem for p in (asset_dir("slurm") / "clusters").glob("*.yaml"))
FIXED_RUN_DIR = Path("/scratch/project/occi/runs/demo")
FIXED_WORKDIR = Path("/scratch/project/occi")


def rendered_scripts(profile_name: str) -> dict[str, str]:
    """Every step's script for the demo run on one profile, machine paths replaced by names."""
    cfg = config_module.load("demo")
    profile, _ = load_profile(profile_name)
    scripts = {}
    for step in plan(cfg, FIXED_RUN_DIR, profile, chain=3):
        text = render(step, cfg, profile, FIXED_RUN_DIR, Path(cfg.source_file), nodes_for(cfg, profile), FIXED_WORKDIR)
        scripts[step.name] = text.replace(sys.executable, "<PYTHON>").replace(cfg.source_file, "<CONFIG>")
    return scripts


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_scripts_match_golden_files(profile):
    scripts = rendered_scripts(profile)
    folder = GOLDEN / profile
    if os.environ.get("OCCI_UPDATE_GOLDEN"):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, text in scripts.items():
            (folder / f"{name}.sbatch").write_text(text)
    expected = {p.stem: p.read_text() for p in folder.glob("*.sbatch")}
    assert scripts == expected, f"re-render with OCCI_UPDATE_GOLDEN=1 and review the diff of {folder}"


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_scripts_are_valid_bash(profile, tmp_path):
    for name, text in rendered_scripts(profile).items():
        path = tmp_path / f"{name}.sbatch"
        path.write_text(text)
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{profile}/{name}: {result.stderr}"


def test_every_shipped_profile_parses_and_names_its_resources():
    for name in PROFILES:
        profile, _ = load_profile(name)
        assert profile.cpu_partition and profile.gpu_partition and profile.description
    assert load_profile("lumi-g")[0].experimental


HOSTILE = "x'; touch {marker}; echo '$(touch {marker})`touch {marker}`\"$HOME"


def test_no_config_string_can_inject_shell(tmp_path):
    marker = tmp_path / "pwned"
    hostile = HOSTILE.format(marker=marker)
    run_dir = tmp_path / "run"  # it goes into #SBATCH --output: hostile ones are refused (below)
    config_dir = tmp_path / "cfg $(touch pwned) `touch pwned`"  # relative: the jobs run in tmp_path
    config_dir.mkdir()
    config_path = config_dir / "run.yaml"
    config_path.write_text(yaml.safe_dump({"name": f"evil\n{hostile}", "languages": ["fr"], "corpora": "demo", "model": "tiny"}))
    with pytest.raises(OcciError, match="cannot name a run folder"):  # a run name is a plain folder name
        config_module.load(str(config_path))
    config_path.write_text(yaml.safe_dump({"name": "evil", "languages": ["fr"], "corpora": "demo", "model": "tiny"}))
    cfg = config_module.load(str(config_path))
    profile = build(ClusterProfile, {
        "description": hostile, "cpu_partition": "debug", "gpu_partition": "debug", "gpu_request": "none",
        "modules": [hostile], "env": {"OCCI_VALUE": hostile}, "venv": "auto",
    }, "test: ")
    stub_bin = tmp_path / "bin"
    stub_bin.mkdir()
    for tool in ("module", "srun", "scontrol"):  # stand-ins so the script runs to its end here
        (stub_bin / tool).write_text("#!/bin/sh\nexit 0\n")
        (stub_bin / tool).chmod(0o755)
    for step in plan(cfg, run_dir, profile):
        script = tmp_path / f"{step.name}.sbatch"
        script.write_text(render(step, cfg, profile, run_dir, config_path, 1, tmp_path))
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PATH": f"{stub_bin}:{os.environ['PATH']}", "SLURM_JOB_ID": "1",
                            "SLURM_ARRAY_TASK_ID": "0", "SLURM_JOB_NODELIST": "localhost", "SLURM_NNODES": "1"})
        assert not marker.exists(), f"{step.name}: a config string ran as shell code"
        directives = [line for line in script.read_text().splitlines() if line.startswith("#SBATCH")]
        assert all(re.fullmatch(r"#SBATCH --[a-z-]+(=[^\s'\"`$;]+)?", d) for d in directives), directives


def test_a_run_dir_that_cannot_be_a_log_path_is_refused(tmp_path):
    cfg = config_module.load("demo")
    profile, _ = load_profile("local")
    run_dir = tmp_path / "run $(touch x)"
    step = plan(cfg, run_dir, profile)[0]
    with pytest.raises(OcciError, match="log path"):
        render(step, cfg, profile, run_dir, Path(cfg.source_file), 1, FIXED_WORKDIR)


@pytest.mark.parametrize("field, value", [("cpu_partition", "debug\n#SBATCH --uid=0"), ("account", "a b"),
                                          ("cpu_time", "1:00 --uid=0")])
def test_directive_values_must_be_single_words(field, value):
    cfg = config_module.load("demo")
    data = {"description": "d", "cpu_partition": "debug", "gpu_partition": "debug", field: value}
    profile = build(ClusterProfile, data, "test: ")
    step = plan(cfg, FIXED_RUN_DIR, profile)[0]
    with pytest.raises(OcciError, match="cannot go into an #SBATCH line"):
        render(step, cfg, profile, FIXED_RUN_DIR, Path(cfg.source_file), 1, FIXED_WORKDIR)


def test_profile_rejects_bad_env_names_and_flags():
    with pytest.raises(OcciError, match="not a valid environment variable name"):
        build(ClusterProfile, {"description": "d", "cpu_partition": "c", "gpu_partition": "g", "env": {"A B": "1"}}, "t: ")
    with pytest.raises(OcciError, match="--name=value"):
        build(ClusterProfile, {"description": "d", "cpu_partition": "c", "gpu_partition": "g",
                               "sbatch_flags": ["--qos=x --uid=0"]}, "t: ")


def test_dry_run_writes_scripts_and_prints_the_plan(tmp_path):
    result = occi("slurm", "submit", "demo", "--run-dir", str(tmp_path / "run"), "--cluster", "leonardo-booster",
                  "--dry-run", "--chain", "4")
    assert result.returncode == 0, result.stderr
    assert "corpora-filter" in result.stdout and "train" in result.stdout and "(dry run)" in result.stdout
    plan_file = json.loads((tmp_path / "run" / "slurm" / "plan.json").read_text())
    steps = {s["step"]: s for s in plan_file["steps"]}
    assert steps["train"]["array"] == 4 and steps["corpora-buckets"]["after"] == ["corpora-filter"]
    assert [steps[f"corpora-{name}"]["after"] for name in ("clusters", "write", "finish")] == [
        ["corpora-buckets"], ["corpora-clusters"], ["corpora-write"]]
    assert steps["corpora-clusters"]["array"] == len(yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["languages"])
    buckets = (tmp_path / "run" / "slurm" / "corpora-buckets.sbatch").read_text()
    assert '--rank "$SLURM_ARRAY_TASK_ID"' in buckets and "--phase buckets" in buckets
    train = (tmp_path / "run" / "slurm" / "train.sbatch").read_text()
    assert "#SBATCH --array=0-3%1" in train and "#SBATCH --signal=B:USR1@600" in train
    assert "HF_TOKEN" not in "".join(p.read_text() for p in (tmp_path / "run" / "slurm").glob("*.sbatch"))


# ---------------------------------------------------------------- a real cluster

@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.fail("the SLURM tests need root to start the one-node cluster (CI runs as root)")
    result = subprocess.run(["bash", str(REPO / "scripts" / "slurm-start.sh")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return True


def wait_for(run_dir: Path, timeout: float = 900) -> list[dict]:
    """Polls `occi slurm status` until no step is pending or running."""
    from occi.slurm.status import status

    deadline = time.monotonic() + timeout
    while True:
        steps = status(run_dir)
        if all(s["state"] not in ("PENDING", "RUNNING", "UNKNOWN") for s in steps):
            return steps
        assert time.monotonic() < deadline, steps
        time.sleep(2)


def small_demo_config(folder: Path, **train) -> Path:
    """The demo run on four languages, trained with two ranks (data parallel)."""
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    demo.update({"name": "slurm-demo", "languages": ["de", "fr", "sv", "fi"]})
    demo["train"] = {**demo.get("train", {}), "data_parallel": 2, "steps": 20, "eval_interval": 10,
                     "save_interval": 10, **train}
    if "eval" in demo:
        demo["eval"] = {**demo["eval"], "limit": 4} if isinstance(demo["eval"], dict) else demo["eval"]
    path = folder / "slurm-demo.yaml"
    path.write_text(yaml.safe_dump(demo))
    return path


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 13 steps, 27 jobs: 10 min on a machine shared by six sessions (load 17 on 2 cores)
def test_demo_run_as_slurm_jobs_end_to_end(cluster, tmp_path):
    config = small_demo_config(tmp_path)
    run_dir = tmp_path / "run"
    profile = yaml.safe_load((asset_dir("slurm") / "clusters" / "local.yaml").read_text())
    profile["max_array_size"] = 3  # every array still has several tasks; the corpora stage has four arrays
    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump(profile))
    result = occi("slurm", "submit", str(config), "--run-dir", str(run_dir), "--cluster", str(local))
    assert result.returncode == 0, result.stderr
    steps = wait_for(run_dir)
    assert {s["step"]: s["state"] for s in steps} == {s["step"]: "COMPLETED" for s in steps}, \
        subprocess.run([sys.executable, "-m", "occi.cli", "slurm", "status", str(run_dir)], capture_output=True, text=True).stdout
    names = [s["step"] for s in steps]
    assert names[:5] == ["corpora-filter", "corpora-buckets", "corpora-clusters", "corpora-write", "corpora-finish"]
    assert "train" in names and "export" in names
    assert all(next(s for s in steps if s["step"] == f"corpora-{name}")["tasks"] > 1  # real job arrays
               for name in ("filter", "buckets", "clusters", "write"))
    train_log = next((run_dir / "slurm" / "logs").glob("train-*.out")).read_text()
    assert "train: step 20/20 (complete)" in train_log
    assert (run_dir / "hf" / "model.safetensors").exists()
    again = occi("slurm", "submit", str(config), "--run-dir", str(run_dir), "--cluster", str(local), "--dry-run")
    assert "nothing to submit" in again.stdout


@pytest.mark.slow
def test_a_failed_step_cancels_its_dependents_and_status_says_why(cluster, tmp_path):
    config = small_demo_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["data"] = {"weights": {"de": 1.0}}  # the blend step fails: fr, sv, fi have no weight
    config.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    for stage in (["corpora", "build"], ["tokenizer", "train"]):  # done here: the plan starts at data
        assert occi(*stage, str(config), "--run-dir", str(run_dir)).returncode == 0
    assert occi("slurm", "submit", str(config), "--run-dir", str(run_dir), "--cluster", "local").returncode == 0
    steps = {s["step"]: s for s in wait_for(run_dir)}
    assert "corpora-filter" not in steps and "tokenizer" not in steps
    assert steps["data-blend"]["state"] == "FAILED"
    assert steps["train"]["state"] == "CANCELLED" and steps["export"]["state"] == "CANCELLED"
    shown = occi("slurm", "status", str(run_dir))
    assert shown.returncode == 1
    assert "step data-blend FAILED" in shown.stdout and "no weight for fr, sv, fi" in shown.stdout
    assert "cancelled because data-blend failed: train, export" in shown.stdout


@pytest.mark.slow
def test_usr1_checkpoints_requeues_and_finishes_with_the_same_loss(cluster, tmp_path):
    # the signal comes after step 20 of 100: the 80 steps left give scancel and the trainer's step
    # boundary time to act before the job would end on its own
    config = small_demo_config(tmp_path, steps=100, eval_interval=1000, save_interval=1000, log_interval=5)
    reference = tmp_path / "reference"
    run_dir = tmp_path / "run"
    for stage in (["corpora", "build"], ["tokenizer", "train"], ["data", "prepare"]):
        assert occi(*stage, str(config), "--run-dir", str(reference)).returncode == 0
    shutil.copytree(reference, run_dir)
    # the uninterrupted reference trains beside the job: the job's requeue leaves this worker idle
    # for the 30 s its launch credential takes to expire, and its start-ups for more
    with open(tmp_path / "reference.out", "w") as out:
        trained = subprocess.Popen([sys.executable, "-m", "occi.cli", "train", str(config), "--run-dir", str(reference)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        requeued_run_matches(config, reference, run_dir, trained)
    finally:
        if trained.poll() is None:  # a failed check above: the reference stops at its next step
            trained.terminate()
            try:
                trained.wait(timeout=120)
            except subprocess.TimeoutExpired:
                trained.kill()


def requeued_run_matches(config: Path, reference: Path, run_dir: Path, trained: subprocess.Popen) -> None:
    result = occi("slurm", "submit", str(config), "--run-dir", str(run_dir), "--cluster", "local")
    job = next(s for s in json.loads((run_dir / "slurm" / "jobs.json").read_text())["submissions"][-1]["steps"]
               if s["step"] == "train")["job_id"]
    assert result.returncode == 0
    log = run_dir / "train" / "log.jsonl"
    deadline = time.monotonic() + 300
    while not (log.exists() and log.read_text().count('"kind": "train"') >= 4):  # step 20
        assert time.monotonic() < deadline
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True)
    steps = wait_for(run_dir)
    assert all(s["state"] == "COMPLETED" for s in steps), steps
    output = next((run_dir / "slurm" / "logs").glob("train-*.out")).read_text()
    assert "time limit near (USR1)" in output and "requeueing job" in output and "resumed from step" in output
    assert trained.wait(timeout=600) == 0, (reference.parent / "reference.out").read_text()[-3000:]
    expected = [json.loads(line) for line in (reference / "train" / "log.jsonl").read_text().splitlines()]
    actual = [json.loads(line) for line in log.read_text().splitlines()]
    final = lambda records: [r for r in records if r["kind"] == "train"][-1]  # noqa: E731
    assert final(actual)["step"] == 100 and final(actual)["loss"] == final(expected)["loss"]
