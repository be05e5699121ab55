"""Issue #28, the trainer's side: the memory and communication knobs, the stability guard and the
experiment trackers, on CPU with gloo.

One guarded 2-rank run carries most checks: fault-injection drills poison batch 1 (NaN gradients
on one rank only) and batch 5 (a loss spike); it trains with the distributed optimizer and both overlaps at
DP=2, stops after 6 steps and resumes at DP=1, logging to TensorBoard, wandb (offline) and a real MLflow
tracking server started here. The reference is a plain-optimizer DP=2 run whose data order never
held batches 1 and 5.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import wandb_offline
from conftest import REPO, occi
from test_train import LANGS, fresh_copy, prepared, train_log, write_run_config  # noqa: F401 (fixture)

GUARD = {"policy": "rollback", "spike_window": 3, "spike_zscore": 100}
DRILLS = [{"batch": 1, "fault": "nan_grad"}, {"batch": 5, "fault": "spike"}]
OPTIMIZER = {"distributed_optimizer": True, "overlap_grad_reduce": True, "overlap_param_gather": True}
STEP_TO_BATCH = {1: 0, 2: 2, 3: 3, 4: 4, 5: 6, 6: 7, 7: 8, 8: 9}


def log_records(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "train" / "log.jsonl").read_text().splitlines()) if r["kind"] == kind]


def model_weights(checkpoint: Path, tmp_path: Path) -> dict[str, torch.Tensor]:
    """A distributed checkpoint's model tensors, read back without a process group."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    out = tmp_path / f"{checkpoint.parent.parent.name}-{checkpoint.name}.pt"
    dcp_to_torch_save(str(checkpoint), str(out))
    state = torch.load(out, weights_only=False)
    return {k: v for k, v in state.items() if torch.is_tensor(v) and not k.startswith("optimizer.") and "_extra_state" not in k}


class MlflowServer:
    """`mlflow server` on a free localhost port with an sqlite backend (started at once, waited for
    when first needed: it takes a while to import)."""

    def __init__(self, folder: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / "mlflow-server.log", "w")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "art")],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self) -> str:
        import urllib.request

        deadline = time.monotonic() + 300
        while True:
            assert self.process.poll() is None, (Path(self.log.name).read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.uri
            except OSError:
                pass
            assert time.monotonic() < deadline, "the MLflow server did not start in 300 s"
            time.sleep(1)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def guarded(prepared, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("guard")
    server = MlflowServer(folder)
    try:
        reference = fresh_copy(prepared, folder / "reference")
        config = write_run_config(folder, "reference.yaml", data_parallel=2, save_interval=3,
                                  stability={**GUARD, "skip_batches": [1, 5]})
        result = occi("train", str(config), "--run-dir", str(reference))
        assert result.returncode == 0, result.stderr[-3000:]

        run_dir = fresh_copy(prepared, folder / "guarded")
        trackers = ["tensorboard", "wandb", "mlflow"]
        env = {"WANDB_MODE": "offline", "WANDB_PROJECT": "occi-tests", "MLFLOW_TRACKING_URI": server.wait_ready(),
               "MLFLOW_EXPERIMENT_NAME": "guarded"}
        first = occi("train", str(write_run_config(folder, "dp2.yaml", data_parallel=2, **OPTIMIZER,
                                                   save_interval=3, stop_after_steps=6, trackers=trackers,
                                                   stability={**GUARD, "inject": DRILLS})),
                     "--run-dir", str(run_dir), env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        second = occi("train", str(write_run_config(folder, "dp1.yaml", data_parallel=1, **OPTIMIZER,
                                                    save_interval=3, trackers=trackers,
                                                    stability={**GUARD, "inject": DRILLS})),
                      "--run-dir", str(run_dir), "--reconfigure", env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        from mlflow.tracking import MlflowClient

        client = MlflowClient(server.uri)
        experiment = client.get_experiment_by_name("guarded")
        mlflow_runs = client.search_runs([experiment.experiment_id])
        mlflow_view = {"runs": len(mlflow_runs)}
        if mlflow_runs:
            run = mlflow_runs[0]
            mlflow_view.update(
                id=run.info.run_id, params=run.data.params,
                loss=[(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")],
                valid_fr=[m.step for m in client.get_metric_history(run.info.run_id, "valid/loss_fr")],
                memory=[m.value for m in client.get_metric_history(run.info.run_id, "train/memory_gib")],
                bad_steps=[(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "stability/bad_steps")],
                artifacts=sorted(a.path for a in client.list_artifacts(run.info.run_id)),
                stability=json.loads(Path(client.download_artifacts(run.info.run_id, "stability.json",
                                                                    str(folder))).read_text()),
                config=Path(client.download_artifacts(run.info.run_id, "config.yaml", str(folder))).read_text())
        yield {"reference": reference, "run": run_dir, "first": first, "second": second, "mlflow": mlflow_view,
               "folder": folder}
    finally:
        server.stop()


# ---------------------------------------------------------------- the stability guard

def test_guard_catches_both_drills_on_every_rank_and_skips_their_batches(guarded):
    run_dir = guarded["run"]
    stored = json.loads((run_dir / "train" / "stability.json").read_text())
    assert stored["skipped_batches"] == [1, 5]
    nan, spike = stored["events"]
    # no checkpoint before step 2: a rollback has nothing to go back to, so the update is dropped
    assert (nan["step"], nan["batch"], nan["policy"]) == (2, 1, "skip")
    assert "gradient norm is not finite" in nan["reason"]
    assert (spike["step"], spike["batch"], spike["policy"], spike["rolled_back_to"]) == (5, 5, "rollback", 3)
    assert spike["reason"].startswith("loss spike") and spike["loss"] > 1000
    for event in (nan, spike):
        assert event["languages"] and set(event["languages"]) <= set(LANGS)
        assert set(event["documents"]) == set(event["languages"])
        assert all(isinstance(d, int) and d >= 0 for docs in event["documents"].values() for d in docs)
    output = guarded["first"].stdout
    assert "train: stability: step 2 (batch 1): the gradient norm is not finite" in output
    assert "rolled back to the checkpoint of step 3; batch 5 is skipped" in output
    assert "resumed from step 5" in guarded["second"].stdout  # 6 steps trained: step 4 twice
    # the nan_grad drill poisons one rank: the other must have dropped its update too, or the
    # two data-parallel ranks' weights (and every later loss) would differ from the reference


def test_data_position_after_rollback_and_restart_is_exact(guarded):
    """Each step trains on the batch a run without batches 1 and 5 trains on, through the rollback
    (step 4 trained twice) and the restart at another DP size."""
    trained = {r["step"]: r["batch"] for r in log_records(guarded["run"], "train")}
    assert trained == STEP_TO_BATCH
    assert {r["step"]: r["batch"] for r in log_records(guarded["reference"], "train")} == STEP_TO_BATCH
    steps = [r["step"] for r in log_records(guarded["run"], "train")]
    assert steps == [1, 2, 3, 4, 4, 5, 6, 7, 8], "step 4 again after the rollback to step 3"


def test_guarded_run_equals_a_run_that_never_saw_the_bad_batches(guarded, tmp_path):
    """...and the distributed optimizer with overlapped gradient reduction and weight gathering (DP=2,
    then DP=1 from its checkpoint) equals the plain one."""
    losses, expected = train_log(guarded["run"]), train_log(guarded["reference"])
    assert list(losses) == list(expected) == list(range(1, 9))
    assert [losses[s] for s in range(1, 7)] == pytest.approx([expected[s] for s in range(1, 7)], abs=1e-6)
    assert [losses[s] for s in (7, 8)] == pytest.approx([expected[s] for s in (7, 8)], abs=1e-5)
    ours = model_weights(guarded["run"] / "checkpoints" / "iter_0000008", tmp_path)
    theirs = model_weights(guarded["reference"] / "checkpoints" / "iter_0000008", tmp_path)
    assert sorted(ours) == sorted(theirs) and len(ours) >= 8
    worst = max((ours[k].float() - theirs[k].float()).abs().max().item() for k in ours)
    assert worst < 1e-5, worst


def test_card_shows_the_stability_events(guarded, tmp_path):
    config = guarded["folder"] / "dp1.yaml"
    result = occi("card", str(config), "--run-dir", str(guarded["run"]), "--out", str(tmp_path / "CARD.md"))
    assert result.returncode == 0, result.stderr[-3000:]
    card = (tmp_path / "CARD.md").read_text()
    section = card.split("## Training stability")[1].split("\n## ")[0]
    assert "policy `rollback`" in section and "2 step(s) rejected" in section
    assert "| 2 | 1 | the gradient norm is not finite" in section
    assert "| 5 | 5 | loss spike" in section and "rolled back to step 3" in section


def test_stop_policy_ends_the_run_with_one_line_and_no_checkpoint(prepared, tmp_path):  # noqa: F811
    run_dir = fresh_copy(prepared, tmp_path)
    config = write_run_config(tmp_path, steps=4, stability={"policy": "stop", "inject": [{"batch": 0, "fault": "nan_loss"}]})
    result = occi("train", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("occi: error: train.stability.policy stop: step 1 (batch 0) is bad: the loss is nan")
    assert not (run_dir / "checkpoints" / "latest").exists()
    assert json.loads((run_dir / "train" / "stability.json").read_text())["events"][0]["policy"] == "stop"


# ---------------------------------------------------------------- trackers

def test_tensorboard_events_read_back(guarded):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(guarded["run"] / "train" / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("train/loss", "train/lr", "train/tokens_per_s", "train/memory_gib", "valid/loss_fr", "valid/loss_et"):
        assert tag in scalars, tag
    losses = {e.step: e.value for e in events.Scalars("train/loss")}
    assert sorted(losses) == list(range(1, 9))
    assert losses[8] == pytest.approx(train_log(guarded["run"])[8], abs=1e-6)
    assert {e.step for e in events.Scalars("valid/loss_fr")} == {4, 8}
    assert {e.step for e in events.Tensors("stability/text_summary")} == {2, 5}
    assert any(e.step == 0 for e in events.Tensors("config/text_summary"))


def test_wandb_offline_files_read_back_as_one_resumed_run(guarded):
    files = sorted((guarded["run"] / "train" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2, files  # one per launch
    ids = set().union(*(wandb_offline.run_ids(f) for f in files))
    assert len(ids) == 1 and ids == {json.loads((guarded["run"] / "train" / "trackers.json").read_text())["wandb"]}
    rows = [row for f in files for row in wandb_offline.history(f)]
    losses = {row["train/step"]: row["train/loss"] for row in rows if "train/loss" in row}
    assert sorted(losses) == list(range(1, 9))
    assert losses == pytest.approx(train_log(guarded["run"]), abs=1e-6)
    assert {row["train/step"] for row in rows if "valid/loss_sv" in row} == {4, 8}
    assert all("train/memory_gib" in row and "train/lr" in row for row in rows if "train/loss" in row)
    assert [(row["train/step"], row["stability/bad_steps"]) for row in rows if "stability/bad_steps" in row] == [(2, 1), (5, 2)]
    config = wandb_offline.config(files[-1])
    assert config["train.data_parallel"] == "1" and config["train.stability.policy"] == "rollback"


def test_mlflow_server_holds_one_resumed_run(guarded):
    view = guarded["mlflow"]
    assert view["runs"] == 1, "the restart logged into the same MLflow run"
    assert view["id"] == json.loads((guarded["run"] / "train" / "trackers.json").read_text())["mlflow"]
    last = dict(view["loss"])  # a step trained twice (the rollback) keeps its last value
    assert sorted(last) == list(range(1, 9))
    assert last == pytest.approx(train_log(guarded["run"]), abs=1e-6)
    assert set(view["valid_fr"]) == {4, 8} and all(m > 0 for m in view["memory"])  # 4 again after the rollback
    assert view["bad_steps"] == [(2, 1.0), (5, 2.0)]
    assert view["params"]["train.stability.policy"] == "rollback"
    assert view["params"]["train.distributed_optimizer"] == "True"
    assert {"config.yaml", "stability.json"} <= set(view["artifacts"])
    assert [e["batch"] for e in view["stability"]["events"]] == [1, 5]
    assert yaml.safe_load(view["config"])["train"]["data_parallel"] == 1


# ---------------------------------------------------------------- the knobs

def test_recompute_gives_bit_identical_losses_and_gradients(tmp_path):
    out = tmp_path / "recompute.pt"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                             str(REPO / "tests" / "recompute_check.py"), str(out)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = torch.load(out)
    plain = results["none"]
    for name in ("selective", "full", "full_1_layer"):
        assert torch.equal(results[name]["loss"], plain["loss"]), name
        assert results[name]["grads"].keys() == plain["grads"].keys()
        for key, grad in plain["grads"].items():
            assert torch.equal(results[name]["grads"][key], grad), (name, key)
    # a recomputed module runs forward again during the backward pass
    assert plain["calls"] == {"layer_0": 1, "layer_1": 1, "core_attention_0": 1}
    assert results["selective"]["calls"] == {"layer_0": 1, "layer_1": 1, "core_attention_0": 2}
    assert results["full"]["calls"] == {"layer_0": 2, "layer_1": 2, "core_attention_0": 2}
    assert results["full_1_layer"]["calls"] == {"layer_0": 2, "layer_1": 1, "core_attention_0": 2}


def test_sequence_parallel_equals_tensor_parallel_alone(prepared, tmp_path):  # noqa: F811
    runs = {}
    for name, knobs in {"tp2": {}, "tp2_sp": {"sequence_parallel": True}}.items():
        run_dir = fresh_copy(prepared, tmp_path / name)
        config = write_run_config(tmp_path / name, tensor_parallel=2, steps=4, eval_interval=4, save_interval=4,
                                  **knobs)
        result = occi("train", str(config), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = run_dir
    plain, sequence_parallel = train_log(runs["tp2"]), train_log(runs["tp2_sp"])
    assert list(plain) == [1, 2, 3, 4]
    assert [sequence_parallel[s] for s in plain] == pytest.approx([plain[s] for s in plain], abs=1e-5)
    ours = model_weights(runs["tp2_sp"] / "checkpoints" / "iter_0000004", tmp_path)
    theirs = model_weights(runs["tp2"] / "checkpoints" / "iter_0000004", tmp_path)
    assert max((ours[k] - theirs[k]).abs().max().item() for k in ours) < 1e-5


@pytest.mark.parametrize("train, message", [
    ({"sequence_parallel": True}, "train: sequence_parallel needs tensor_parallel > 1"),
    ({"recompute_layers": 1}, "train: recompute_layers 1 needs recompute: full"),
    ({"recompute": "full", "recompute_layers": 3}, "train.recompute_layers (3) is above the 2 layers"),
    ({"overlap_param_gather": True, "overlap_grad_reduce": True}, "train: overlap_param_gather needs distributed_optimizer"),
    ({"context_parallel": 0}, "train: context_parallel: expected at least 1, got 0"),
    ({"trackers": ["wandb", "wandb"]}, "names a tracker twice"),
    ({"trackers": ["neptune"]}, "train.trackers"),
    ({"stability": {"policy": "retry"}}, "train.stability.policy"),
    ({"stability": {"inject": [{"batch": -1, "fault": "spike"}]}}, "batch: expected at least 0, got -1"),
])
def test_bad_knob_settings_get_one_line(tmp_path, train, message):
    result = occi("train", str(write_run_config(tmp_path, **train)), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_context_parallel_is_refused_without_transformer_engine_in_one_line(prepared, tmp_path):  # noqa: F811
    run_dir = fresh_copy(prepared, tmp_path)
    result = occi("train", str(write_run_config(tmp_path, context_parallel=2, data_parallel=1)), "--run-dir", str(run_dir))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "train.context_parallel 2 needs Transformer Engine's attention" in result.stderr
    assert not (run_dir / "train" / "log.jsonl").exists(), "refused before any rank started"


def test_rendered_train_job_names_the_knobs(tmp_path):
    config = write_run_config(tmp_path, tensor_parallel=2, sequence_parallel=True, recompute="full", recompute_layers=1,
                              distributed_optimizer=True, overlap_grad_reduce=True)
    result = occi("slurm", "submit", str(config), "--run-dir", str(tmp_path / "run"), "--cluster", "leonardo-booster",
                  "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    script = (tmp_path / "run" / "slurm" / "train.sbatch").read_text()
    assert ("# train knobs (from the config): recompute full (1 layers per stage), context_parallel 1, "
            "distributed_optimizer, sequence_parallel, overlap_grad_reduce") in script
    assert "export CUDA_DEVICE_MAX_CONNECTIONS=1" in script
