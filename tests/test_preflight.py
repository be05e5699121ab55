"""Pre-flight: `occi fetch` (manifest, offline shard planning, the missing-item error), `occi doctor`
on CPU (the GPU checks skipped with their reason), and what the cluster profiles now express.

Nothing is downloaded: a local dataset folder in the hub layout (a README with `configs:`) and a
tiny local model stand in for hub ids and go through the same code path.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import occi, sample_docs
from occi import config as config_module
from occi.errors import OcciError

OFFLINE = {"HF_HUB_OFFLINE": "1"}


def hub_folder(root: Path, codes=("fr", "de"), files: int = 3, rows: int = 2) -> Path:
    """A dataset folder laid out as FineWeb-2 is on the hub: data/<subset>/train/*.parquet."""
    for code in codes:
        docs = sample_docs(code)
        folder = root / "data" / code / "train"
        folder.mkdir(parents=True)
        for i in range(files):
            part = [docs[(i * rows + j) % len(docs)] for j in range(rows)]
            pq.write_table(pa.table({"id": [f"{code}-{i}-{j}" for j in range(rows)], "text": [d["text"] for d in part]}),
                           folder / f"{i:03d}.parquet")
    configs = "".join(f"- config_name: {c}\n  data_files:\n  - split: train\n    path: data/{c}/train/*.parquet\n"
                      for c in codes)
    (root / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    return root


def hub_config(folder: Path, dataset: str, limit: int | None = 3, **extra) -> Path:
    source = {"name": "web", "kind": "hub", "dataset": dataset, "subset": "{code}", "language": "{code}"}
    if limit:
        source["limit"] = limit
    config = {"name": "pf", "languages": ["fr", "de"], "model": "tiny",
              "corpora": {"sources": [source], "workers": 1}, **extra}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ---------------------------------------------------------------- fetch

def test_fetch_records_only_the_files_the_limit_needs_and_the_corpora_read_them_offline(tmp_path, monkeypatch):
    data = hub_folder(tmp_path / "hub")
    config = hub_config(tmp_path, str(data), limit=3)
    run_dir = tmp_path / "run"
    result = occi("fetch", str(config), "--run-dir", str(run_dir), env=OFFLINE)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((run_dir / "fetch.json").read_text())
    entry = manifest["items"][f"dataset:{data}:fr:train"]
    assert entry["complete"] and entry["revision"] == "local"
    assert [Path(f["path"]).name for f in entry["files"]] == ["000.parquet", "001.parquet"]  # 2 x 2 rows >= 3
    assert [f["rows"] for f in entry["files"]] == [2, 2] and entry["bytes"] == sum(f["bytes"] for f in entry["files"])

    again = occi("fetch", str(config), "--run-dir", str(run_dir), env=OFFLINE)  # resumable: nothing left to do
    assert again.returncode == 0 and "2 already fetched" in again.stdout

    from occi.corpora.sources import plan_shards
    from occi.preflight.manifest import Manifest

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = config_module.load(str(run_dir / "config.yaml"))
    shards = plan_shards(cfg.corpora, cfg.languages, Manifest.read(run_dir))
    assert [(Path(s.location).parent.parent.name, Path(s.location).name, s.limit) for s in shards] == [
        ("fr", "000.parquet", 2), ("fr", "001.parquet", 1), ("de", "000.parquet", 2), ("de", "001.parquet", 1)]

    built = occi("corpora", "build", str(config), "--run-dir", str(run_dir), env=OFFLINE)
    assert built.returncode == 0, built.stderr
    stats = json.loads((run_dir / "corpora" / "stats.json").read_text())
    assert stats["sources"]["web-fr"]["documents_in"] == 3 and stats["sources"]["web-de"]["documents_in"] == 3


def test_offline_hub_sources_must_be_in_the_manifest(tmp_path, monkeypatch):
    config = hub_config(tmp_path, "occi-test/never-fetched")
    from occi.corpora.sources import plan_shards

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = config_module.load(str(config))
    with pytest.raises(OcciError, match="not in the run's fetch manifest.*occi fetch"):
        plan_shards(cfg.corpora, cfg.languages)  # at once, not after datasets' retries
    result = occi("slurm", "submit", str(config), "--run-dir", str(tmp_path / "run"), "--cluster", "juwels-booster",
                  "--dry-run", env=OFFLINE)
    assert result.returncode == 2
    assert "dataset:occi-test/never-fetched:fr:train was not fetched" in result.stderr
    assert "occi fetch" in result.stderr and "--cluster juwels-booster" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_fetch_a_base_model_given_as_a_local_folder(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from occi.preflight.fetch import fetch
    from occi.preflight.manifest import Item, Manifest
    from occi.rundir import RunDir

    model_dir = tmp_path / "tiny-llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(model_dir)
    cfg = config_module.load(str(hub_config(tmp_path, str(hub_folder(tmp_path / "hub")))))
    run = RunDir(tmp_path / "run")
    item = Item("model", str(model_dir))
    lines: list[str] = []
    fetch(cfg, run, items=[item], log=lines.append)
    entry = Manifest.read(run).entry(item)
    assert {Path(f["path"]).name for f in entry["files"]} >= {"config.json", "model.safetensors"}
    assert Manifest.read(run).problems([item]) == []
    (model_dir / "model.safetensors").unlink()
    assert "gone from the cache" in Manifest.read(run).problems([item])[0]


def test_eval_datasets_come_from_lm_eval_task_configs(tmp_path):
    from occi.preflight.manifest import task_datasets

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "hub_task.yaml").write_text(yaml.safe_dump({
        "task": "pf_hub", "dataset_path": "someorg/quiz", "dataset_name": "fr", "output_type": "multiple_choice",
        "test_split": "test", "doc_to_text": "{{q}}", "doc_to_target": 0, "doc_to_choice": ["a", "b"]}))
    (tasks / "local_task.yaml").write_text(yaml.safe_dump({
        "task": "pf_local", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": "/x.jsonl"}},
        "output_type": "multiple_choice", "test_split": "test", "doc_to_text": "{{q}}", "doc_to_target": 0,
        "doc_to_choice": ["a", "b"]}))
    (tasks / "group.yaml").write_text(yaml.safe_dump({"group": "pf_group", "task": ["pf_hub", "pf_local"]}))
    assert task_datasets(["pf_group"], str(tasks), include_defaults=False) == {("someorg/quiz", "fr")}


# ---------------------------------------------------------------- doctor

def test_doctor_on_cpu_trains_resumes_exports_and_writes_its_report(tmp_path):
    run_dir = tmp_path / "run"
    result = occi("doctor", "demo", "--run-dir", str(run_dir), env=OFFLINE, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((run_dir / "doctor.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert report["failed"] == []
    for name in ("gpus", "all-reduce", "nccl/rccl"):  # GPU checks: skipped, saying why
        assert checks[name]["status"] == "skip" and "GPU" in checks[name]["detail"]
    for name in ("python", "torch", "megatron-core", "run dir speed", "free disk", "hub items", "tiny training",
                 "checkpoint + resume", "export exactness", "throughput"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["export exactness"]["data"]["max_abs_diff"] <= 1e-4
    assert checks["throughput"]["data"]["tokens_per_s"] > 0
    assert checks["run dir speed"]["data"]["write_gbs"] > 0
    assert "tiny training" in result.stdout and "nothing found that would break the run" in result.stdout
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".doctor")]  # scratch folders removed


def test_doctor_exits_1_with_what_to_do_when_the_run_would_break(tmp_path):
    config = hub_config(tmp_path, "occi-test/never-fetched")
    run_dir = tmp_path / "run"
    result = occi("doctor", str(config), "--run-dir", str(run_dir), "--quick", "--cluster", "juwels-booster", env=OFFLINE)
    assert result.returncode == 1, result.stderr
    report = json.loads((run_dir / "doctor.json").read_text())
    assert "hub items" in report["failed"]
    assert "occi fetch" in next(c for c in report["checks"] if c["name"] == "hub items")["fix"]
    names = {c["name"] for c in report["checks"]}
    assert {"cores per rank", "gpus per node", "network interfaces", "memory"} <= names
    interfaces = next(c for c in report["checks"] if c["name"] == "network interfaces")
    assert interfaces["status"] == "fail" or "ib0" in interfaces["value"]  # this machine has no ib0
    assert "HF_TOKEN" not in result.stdout or "export HF_TOKEN" in result.stdout


def test_network_interface_check():
    from occi.preflight.node import interfaces
    from occi.slurm.config import ClusterProfile

    def profile(**env):
        return ClusterProfile(description="d", cpu_partition="c", gpu_partition="g", env=env)

    assert interfaces(profile(NCCL_SOCKET_IFNAME="lo", GLOO_SOCKET_IFNAME="lo")).status == "ok"
    assert interfaces(profile(NCCL_SOCKET_IFNAME="=nosuch0")).status == "fail"


# ---------------------------------------------------------------- profiles and submit

def test_submit_with_doctor_puts_it_first(tmp_path):
    run_dir = tmp_path / "run"
    result = occi("slurm", "submit", "demo", "--run-dir", str(run_dir), "--cluster", "leonardo-booster", "--dry-run",
                  "--doctor")
    assert result.returncode == 0, result.stderr
    steps = json.loads((run_dir / "slurm" / "plan.json").read_text())["steps"]
    assert steps[0]["step"] == "doctor" and steps[0]["kind"] == "node"
    assert steps[1]["after"] == ["doctor"]
    script = (run_dir / "slurm" / "doctor.sbatch").read_text()
    assert "#SBATCH --gres=gpu:4" in script and "-m occi.cli doctor" in script and "--cluster" in script


def test_marenostrum_qos_is_the_users_and_checked_against_its_time_limit(tmp_path):
    env = {"SBATCH_ACCOUNT": "proj", "SBATCH_QOS": ""}
    missing = occi("slurm", "submit", "demo", "--run-dir", str(tmp_path / "a"), "--cluster", "marenostrum5-acc", env=env)
    assert missing.returncode == 2 and "export SBATCH_QOS" in missing.stderr
    debug = occi("slurm", "submit", "demo", "--run-dir", str(tmp_path / "b"), "--cluster", "marenostrum5-acc",
                 "--dry-run", env={**env, "SBATCH_QOS": "acc_debug"})
    assert debug.returncode == 2 and "acc_debug's limit 02:00:00" in debug.stderr
    scripts = "".join(p.read_text() for p in (tmp_path / "a" / "slurm").glob("*.sbatch"))
    assert "--qos" not in scripts  # sbatch reads SBATCH_QOS itself


def test_rank_cpu_map_and_pinning(monkeypatch):
    import os

    from occi.train.affinity import pin_this_rank, rank_cpus

    assert rank_cpus(1, "0-1;2-3,5") == {2, 3, 5}
    assert rank_cpus(0, "") is None
    allowed = os.sched_getaffinity(0)
    first = min(allowed)
    monkeypatch.setenv("OCCI_RANK_CPUS", f"{first};{first}")
    monkeypatch.setenv("LOCAL_RANK", "1")
    try:
        assert pin_this_rank() == f"pinned to cores [{first}]"
        assert os.sched_getaffinity(0) == {first}
    finally:
        os.sched_setaffinity(0, allowed)


def test_profile_format_checks():
    from occi.configtools import build
    from occi.slurm.config import ClusterProfile

    base = {"description": "d", "cpu_partition": "c", "gpu_partition": "g", "gpus_per_node": 2}
    with pytest.raises(OcciError, match="rank_cpus"):
        build(ClusterProfile, {**base, "rank_cpus": ["0-3"]}, "t: ")
    with pytest.raises(OcciError, match="not a time limit"):
        build(ClusterProfile, {**base, "qos_time_limits": {"q": "2h"}}, "t: ")
    with pytest.raises(OcciError, match="container_runtime"):
        build(ClusterProfile, {**base, "container_runtime": "docker"}, "t: ")


def test_rendered_profiles_say_what_the_sites_document():
    from test_slurm import rendered_scripts

    lumi = rendered_scripts("lumi-g")
    assert "singularity exec" in lumi["train"] and "apptainer" not in "".join(lumi.values())
    assert "module use /appl/local/laifs/modules" in lumi["train"] and "--bind=/scratch" not in lumi["train"]
    assert "#SBATCH --partition=small-g" in lumi["eval-languages"]
    assert "#SBATCH --partition=standard-g" in lumi["train"] and "OCCI_RANK_CPUS=" in lumi["train"]
    juwels = rendered_scripts("juwels-booster")
    assert 'head -n 1)i\n' in juwels["train"] and "export GLOO_SOCKET_IFNAME=ib0" in juwels["train"]
    assert all("#SBATCH --threads-per-core=1" in text for text in juwels.values())
    mn5 = rendered_scripts("marenostrum5-acc")
    assert not any("--qos" in text for text in mn5.values())
    for profile in ("lumi-g", "juwels-booster", "marenostrum5-acc", "leonardo-booster", "generic-gpu", "local"):
        train = rendered_scripts(profile)["train"]
        assert "srun --kill-on-bad-exit=1 --cpus-per-task=" in train, profile


def test_an_item_that_cannot_be_fetched_does_not_lose_the_others(tmp_path):
    data = hub_folder(tmp_path / "hub", codes=("fr",))  # no German subset: that item fails
    config = hub_config(tmp_path, str(data))
    run_dir = tmp_path / "run"
    result = occi("fetch", str(config), "--run-dir", str(run_dir), env=OFFLINE)
    assert result.returncode == 2
    assert "1 of 2 item(s) could not be fetched" in result.stderr and f"dataset:{data}:de:train" in result.stderr
    manifest = json.loads((run_dir / "fetch.json").read_text())
    assert list(manifest["items"]) == [f"dataset:{data}:fr:train"]
