"""Data preparation, megatron-core training on CPU (TP, PP, resume, signals) and the export.

Every test runs the real thing: megatron-core GPTModel trained by `occi train` through
torchrun with gloo, checkpoints with dist_checkpointing, and transformers loading the export.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import PREPARED_LANGS, occi, skip_unless_ci, small_disk, transformers4_view
from occi.rundir import RunDir

LANGS = PREPARED_LANGS
TRAIN = {"micro_batch_size": 2, "global_batch_size": 4, "steps": 8, "warmup_steps": 2, "lr": 0.003,
         "min_lr": 0.0003, "eval_interval": 4, "save_interval": 4, "log_interval": 1, "eval_samples": 2}
MODEL = {"recipe": "tiny", "seq_length": 32}


def write_run_config(folder: Path, name: str = "run.yaml", **train) -> Path:
    config = {"name": "t", "languages": LANGS, "corpora": {"recipe": "demo", "workers": 1},
              "tokenizer": {"recipe": "demo", "vocab_size": 600}, "model": MODEL, "train": {**TRAIN, **train}}
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prepared(shared_prepared) -> Path:
    """A run directory with corpora, tokenizer and prepared data (no training yet): the session's
    one (tests/conftest.py), made with this module's corpora and tokenizer sections. Read only."""
    return shared_prepared


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory) -> Path:
    """The prepared run trained once with TRAIN at TP=1 (checkpoints at steps 4 and 8): the
    uninterrupted curve that the parallel, resumed and signalled runs below are compared with.
    Tests only read it (the export test adds its hf/ folder)."""
    run_dir = fresh_copy(prepared, tmp_path_factory.mktemp("reference"))
    result = occi("train", str(write_run_config(run_dir.parent)), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: step 8/8 (complete)" in result.stdout
    return run_dir


def fresh_copy(prepared: Path, tmp_path: Path) -> Path:
    """A copy of the prepared run (corpora, tokenizer, data) for one test to train in: a new run
    (its own config.yaml is frozen by its first command) that starts from the prepared stages."""
    run_dir = tmp_path / "run"
    shutil.copytree(prepared, run_dir, ignore=shutil.ignore_patterns("checkpoints", "train", "hf", "config.yaml"))
    return run_dir


def train_log(run_dir: Path) -> dict[int, float]:
    """step -> training loss, the last value written for each step."""
    losses = {}
    for line in (run_dir / "train" / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "train":
            losses[record["step"]] = record["loss"]
    return losses


def valid_log(run_dir: Path) -> dict[int, dict[str, float]]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "train" / "log.jsonl").read_text().splitlines())
            if r["kind"] == "valid"}


# ---------------------------------------------------------------- data prepare

def test_data_prepare_writes_indexed_datasets_and_blend(prepared):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    blend = RunDir(prepared).read_blend()  # blend.json's paths are relative to the run directory
    assert blend["dtype"] == "uint16"
    tokens = {code: blend["languages"][code]["train"]["tokens"] for code in LANGS}
    expected = {code: tokens[code] ** 0.3 / sum(t ** 0.3 for t in tokens.values()) for code in LANGS}
    for code in LANGS:
        entry = blend["languages"][code]
        assert entry["weight"] == pytest.approx(expected[code], abs=1e-6)
        dataset = IndexedDataset(entry["prefix"])
        assert len(dataset) == entry["train"]["documents"]
        assert int(dataset.sequence_lengths.sum()) == entry["train"]["tokens"]
        assert all(int(dataset[i][-1]) == blend["eod_id"] for i in range(len(dataset)))
        assert entry["valid"]["documents"] >= 1
    parts = blend["megatron_data_path"].split()
    assert parts[1::2] == [blend["languages"][c]["prefix"] for c in LANGS]
    # the documents are SentencePiece's ids of the training texts, in corpus order
    import sentencepiece as spm

    from occi.corpora.reader import read_texts

    from occi.data.bpe import BpeTables
    from occi.data.encoder import words_are_independent

    sp = spm.SentencePieceProcessor(model_file=blend["tokenizer"])
    assert words_are_independent(sp)  # occi's tokenizers are encoded word by word
    assert BpeTables.of(sp) is not None  # and their new words merged by occi/data/bpe.py
    for split, key in (("train", "prefix"), ("heldout", "valid_prefix")):  # both written in one pass
        texts = [text for _, text in read_texts(prepared, "fi", split)]
        dataset = IndexedDataset(blend["languages"]["fi"][key])
        assert [dataset[i][:-1].tolist() for i in range(len(dataset))] == sp.encode(texts, out_type=int)


@pytest.mark.parametrize("dtype", ["uint16", "int32"])
def test_indexed_writer_matches_megatron_builder_byte_for_byte(tmp_path, dtype):
    import numpy as np
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    from occi.data.indexed import IndexedDatasetWriter

    batches = [[[5, 6, 7], [], [65000, 1]], [[9] * 10], [[3, 4]]]
    eod = 2
    ours = IndexedDatasetWriter(tmp_path / "ours.bin", np.dtype(dtype).type)
    written = sum(ours.add_documents(np.array([t for doc in batch for t in doc], dtype=np.int64),
                                     np.array([len(doc) for doc in batch], dtype=np.int64), eod)
                  for batch in batches + [[]])
    ours.finalize(tmp_path / "ours.idx")
    theirs = IndexedDatasetBuilder(str(tmp_path / "theirs.bin"), dtype=np.dtype(dtype).type)
    for doc in (doc for batch in batches for doc in batch):
        theirs.add_document(np.array(doc + [eod], dtype=dtype), [len(doc) + 1])
    theirs.finalize(str(tmp_path / "theirs.idx"))
    assert written == sum(len(doc) + 1 for batch in batches for doc in batch)
    for suffix in ("bin", "idx"):
        assert (tmp_path / f"ours.{suffix}").read_bytes() == (tmp_path / f"theirs.{suffix}").read_bytes()


def test_one_process_writes_what_several_write_and_a_failed_language_loses_no_other(prepared, tmp_path):
    """The fixture prepared its four languages on one process per core; here one process does it,
    then a language whose corpus has no training documents fails alone."""
    run_dir = fresh_copy(prepared, tmp_path)
    shutil.rmtree(run_dir / "data")
    config = yaml.safe_load(write_run_config(tmp_path).read_text())
    (tmp_path / "one.yaml").write_text(yaml.safe_dump({**config, "data": {"workers": 1, "threads": 1}}))
    result = occi("data", "prepare", str(tmp_path / "one.yaml"), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    for name in sorted(p.name for p in (prepared / "data").glob("*_document.*")):
        assert (run_dir / "data" / name).read_bytes() == (prepared / "data" / name).read_bytes(), name

    shutil.rmtree(run_dir / "data")
    for part in (run_dir / "corpora" / "sv").glob("part-*.parquet"):  # Swedish loses every document
        pq.write_table(pq.read_table(part).slice(0, 0), part)
    (tmp_path / "two.yaml").write_text(yaml.safe_dump({**config, "data": {"workers": 2}}))
    result = occi("data", "prepare", str(tmp_path / "two.yaml"), "--run-dir", str(run_dir), "--reconfigure")
    assert result.returncode != 0 and "language 'sv' has no training documents" in result.stderr
    assert sorted(p.name for p in (run_dir / "data").glob("*.json")) == ["et.json", "fi.json", "fr.json"]


def test_blend_proportions_hold_in_the_sampled_data(prepared):
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    from occi.train.trainer import _EodTokenizer

    blend = RunDir(prepared).read_blend()
    weights = [0.1, 0.2, 0.3, 0.4]
    config = GPTDatasetConfig(random_seed=1, sequence_length=32,
                              blend_per_split=[([blend["languages"][c]["prefix"] for c in LANGS], weights), None, None],
                              tokenizer=_EodTokenizer(blend["vocab_size"], blend["eod_id"]), reset_position_ids=False,
                              reset_attention_mask=False, eod_mask_loss=False)
    dataset = BlendedMegatronDatasetBuilder(GPTDataset, [2000, 0, 0], lambda: True, config).build()[0]
    counts = np.bincount(dataset.dataset_index, minlength=4) / len(dataset)
    assert counts == pytest.approx(weights, abs=0.01)


def test_explicit_weights_and_errors():
    from occi.data.blend import explicit_weights, temperature_weights
    from occi.errors import OcciError

    assert temperature_weights({"a": 100, "b": 0}, 0.5) == {"a": 1.0, "b": 0.0}
    assert temperature_weights({"a": 100, "b": 400}, 0.0) == {"a": 0.5, "b": 0.5}
    assert explicit_weights({"a": 5, "b": 5}, {"a": 3, "b": 1}) == {"a": 0.75, "b": 0.25}
    with pytest.raises(OcciError, match="no weight for b"):
        explicit_weights({"a": 5, "b": 5}, {"a": 1})


# ---------------------------------------------------------------- training

def test_tp1_and_tp2_give_the_same_losses_and_pp2_trains(prepared, reference, tmp_path):
    runs = {"tp1": reference}
    for name, parallel in {"tp2": {"tensor_parallel": 2}, "pp2": {"pipeline_parallel": 2}}.items():
        run_dir = fresh_copy(prepared, tmp_path / name)
        result = occi("train", str(write_run_config(tmp_path / name, **parallel)), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "train: step 8/8 (complete)" in result.stdout
        runs[name] = run_dir
    tp1, tp2, pp2 = (train_log(runs[n]) for n in ("tp1", "tp2", "pp2"))
    assert list(tp1) == list(range(1, 9))
    assert [tp2[s] for s in tp1] == pytest.approx([tp1[s] for s in tp1], abs=1e-4)
    assert tp1[8] < tp1[1] - 0.15, "the loss decreases"
    assert pp2[8] < pp2[1] - 0.15, "PP=2 trains too (its stages initialise their layers apart, so not the same curve)"
    valid = valid_log(runs["tp1"])
    assert set(valid) == {4, 8} and set(valid[8]) == set(LANGS)
    assert (runs["tp1"] / "train" / "_DONE").exists()
    assert sorted(p.name for p in (runs["tp1"] / "checkpoints").glob("iter_*")) == ["iter_0000004", "iter_0000008"]
    assert list((runs["tp1"] / "train" / "tensorboard").glob("events.out.tfevents.*"))
    runs_for_export.update(runs)


runs_for_export: dict[str, Path] = {}


def _start_training(config: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "occi.cli", "train", str(config), "--run-dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    log = run_dir / "train" / "log.jsonl"
    while not (log.exists() and step in train_log(run_dir)):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_then_resume_reproduces_the_uninterrupted_curve(prepared, reference, tmp_path):
    """Checkpoints every 2 steps, killed once step 5 is logged, resumed from its last checkpoint:
    exactly the reference's curve (which saved at steps 4 and 8 only: saving changes nothing either)."""
    config = write_run_config(tmp_path, save_interval=2)
    run_dir = fresh_copy(prepared, tmp_path / "killed")
    proc = _start_training(config, run_dir)
    _wait_for_step(run_dir, 5, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "train" / "_DONE").exists()
    result = occi("train", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from step" in result.stdout
    assert train_log(run_dir) == train_log(reference)  # exactly, step by step
    assert valid_log(run_dir) == valid_log(reference)


@pytest.mark.slow
def test_sigusr1_checkpoints_and_stops_cleanly_then_continues(prepared, reference, tmp_path):
    """Under load (two busy loops on the two cores), a SIGUSR1 sent as soon as the launcher is up,
    while torchrun and the ranks are still starting, stops the run at the end of its first step
    with a checkpoint: the request does not depend on how fast torchrun passes signals on."""
    config = write_run_config(tmp_path, save_interval=100)
    run_dir = fresh_copy(prepared, tmp_path / "signalled")
    burners = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        proc = _start_training(config, run_dir)
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("train: starting"):
                break
        assert proc.poll() is None, "".join(seen)[-3000:]
        proc.send_signal(signal.SIGUSR1)
        output, _ = proc.communicate(timeout=600)
        output = "".join(seen) + output
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert proc.returncode == 0, output[-3000:]
    assert "SIGUSR1 received" in output and "stopped early" in output and "Traceback" not in output
    assert int((run_dir / "checkpoints" / "latest").read_text()) == 1
    assert "signal SIGUSR1 received: checkpoint saved at step 1, stopping" in output
    assert not (run_dir / "train" / "stop-request").exists()
    assert occi("train", str(config), "--run-dir", str(run_dir)).returncode == 0  # the request is not replayed
    assert train_log(run_dir) == train_log(reference)


@pytest.mark.slow
def test_tp2_checkpoint_resumes_at_tp1(prepared, reference, tmp_path):
    run_dir = fresh_copy(prepared, tmp_path / "switched")
    first = occi("train", str(write_run_config(tmp_path, "tp2.yaml", tensor_parallel=2, stop_after_steps=4)),
                 "--run-dir", str(run_dir))
    assert first.returncode == 0 and "stopped early" in first.stdout
    second = occi("train", str(write_run_config(tmp_path, "tp1.yaml")), "--run-dir", str(run_dir), "--reconfigure")
    assert second.returncode == 0, second.stderr[-3000:]
    resumed, expected = train_log(run_dir), train_log(reference)
    assert [resumed[s] for s in range(5, 9)] == pytest.approx([expected[s] for s in range(5, 9)], abs=1e-4)


def test_corrupt_and_missing_checkpoints_get_clear_errors(prepared, tmp_path):
    run_dir = fresh_copy(prepared, tmp_path)
    config = write_run_config(tmp_path)
    missing = occi("export", str(config), "--run-dir", str(run_dir))
    assert missing.returncode == 2 and "no checkpoint; run `occi train` first" in missing.stderr
    (run_dir / "checkpoints" / "iter_0000004").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest").write_text("4\n")
    incomplete = occi("train", str(config), "--run-dir", str(run_dir))
    assert incomplete.returncode == 2 and "iter_0000004: checkpoint is missing or incomplete" in incomplete.stderr
    (run_dir / "checkpoints" / "iter_0000004" / "metadata.json").write_text('{"sharded_backend": "torch_dist"}')
    (run_dir / "checkpoints" / "iter_0000004" / "common.pt").write_bytes(b"garbage")
    corrupt = occi("export", str(config), "--run-dir", str(run_dir))
    assert corrupt.returncode == 2 and "cannot load checkpoint" in corrupt.stderr and "corrupt" in corrupt.stderr
    assert "Traceback" not in corrupt.stderr


# ---------------------------------------------------------------- export

@pytest.mark.parametrize("source", ["tp1", "tp2"])
def test_export_is_exact_and_generates(source, tmp_path, transformers4):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source not in runs_for_export:
        skip_unless_ci("needs the training test of this module (run the whole file)")
    run_dir = runs_for_export[source]
    config = write_run_config(tmp_path, tensor_parallel=2 if source == "tp2" else 1)
    result = occi("export", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    from occi import config as config_module
    from occi.train.export import megatron_logits

    tokens = torch.randint(0, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    expected = megatron_logits(config_module.load(str(config)), run_dir, tokens)
    model = AutoModelForCausalLM.from_pretrained(run_dir / "hf")
    with torch.no_grad():
        actual = model(tokens).logits
    assert actual.shape == expected.shape
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "hf")
    inputs = tokenizer("Le marché du samedi", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(generated[0]), str)
    # only what a model repository needs; transformers 4 reads the tokenizer and RoPE base too
    assert sorted(p.name for p in (run_dir / "hf").iterdir()) == [
        "_DONE", "config.json", "generation_config.json", "model.safetensors", "occi_export.json",
        "special_tokens_map.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json"]
    assert json.loads((run_dir / "hf" / "config.json").read_text())["rope_theta"] == 10000.0
    texts = ["Le marché du samedi", "  deux  espaces, 42 chiffres"]
    seen = transformers4_view(transformers4, run_dir / "hf", texts)
    assert seen["version"].startswith("4.") and seen["class"] == "PreTrainedTokenizerFast"
    assert seen["ids"] == [tokenizer(t)["input_ids"] for t in texts]
    assert seen["rope_theta"] == 10000.0
    # Megatron-LM's tools find the newest checkpoint through latest_checkpointed_iteration.txt
    assert (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").read_text() == "8\n"


# ---------------------------------------------------------------- learning-rate schedules, pruning, a full disk

def expected_lr(schedule: str, step: int, steps: int, warmup: int, lr: float, min_lr: float,
                wsd_fraction: float) -> float:
    """The learning rate after `step` optimizer steps, as the README defines each schedule."""
    import math

    if step <= warmup:
        return lr * step / warmup
    if schedule == "constant":
        return lr
    progress = (step - warmup) / (steps - warmup)
    if schedule == "linear":
        return min_lr + (1 - progress) * (lr - min_lr)
    if schedule == "cosine":
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)
    decay_steps = max(1, round(wsd_fraction * steps))  # wsd: flat, then linear over the last share
    return lr if step <= steps - decay_steps else min_lr + (steps - step) / decay_steps * (lr - min_lr)


@pytest.mark.parametrize("schedule", ["constant", "linear", "wsd", "cosine"])
def test_each_lr_schedule_follows_its_definition(schedule):
    """Megatron's scheduler as occi configures it, stepped on a real optimizer for a whole run."""
    import torch

    from occi.train.config import TrainConfig
    from occi.train.trainer import lr_scheduler

    train = TrainConfig(steps=20, warmup_steps=4, lr=1e-3, min_lr=1e-4, lr_schedule=schedule, wsd_decay_fraction=0.3)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    scheduler = lr_scheduler(optimizer, train)
    assert optimizer.param_groups[0]["lr"] == 0.0  # the first step trains at the start of the warmup
    seen = []
    for _ in range(train.steps):
        scheduler.step(increment=1)
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([expected_lr(schedule, s, 20, 4, 1e-3, 1e-4, 0.3) for s in range(1, 21)], rel=1e-9)
    if schedule == "wsd":
        assert seen[4:14] == pytest.approx([1e-3] * 10) and seen[15] < 1e-3  # stable until the last 30 %


WSD = {"lr_schedule": "wsd", "wsd_decay_fraction": 0.25, "save_interval": 2, "keep_last": 1}


@pytest.fixture(scope="module")
def wsd_run(prepared, tmp_path_factory) -> tuple[Path, Path]:
    """One training run with the wsd schedule, a checkpoint every 2 steps and keep_last 1."""
    folder = tmp_path_factory.mktemp("wsd")
    run_dir = fresh_copy(prepared, folder)
    config = write_run_config(folder, **WSD)
    result = occi("train", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return config, run_dir


def test_training_logs_the_wsd_schedule_and_keeps_only_the_last_checkpoint(wsd_run):
    _, run_dir = wsd_run
    records = [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["lr"] for r in records if r["kind"] == "train"}
    assert list(logged) == list(range(1, 9))
    expected = [expected_lr("wsd", s, 8, TRAIN["warmup_steps"], TRAIN["lr"], TRAIN["min_lr"], 0.25) for s in logged]
    assert list(logged.values()) == pytest.approx(expected, rel=1e-6)
    assert logged[6] == pytest.approx(TRAIN["lr"]) and logged[8] == pytest.approx(TRAIN["min_lr"])
    # saved at steps 2, 4, 6 and 8; each save removed the one before
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("iter_")) == ["iter_0000008"]
    assert (run_dir / "checkpoints" / "latest").read_text() == "8\n"


def test_export_to_a_full_disk_names_the_file_and_the_free_space(wsd_run, tmp_path):
    """A real full disk (a small tmpfs holding the run directory; the checkpoints, tokenizer and
    data are links to the trained run): one line naming the file and the free space, and no
    partial export left behind."""
    config, run_dir = wsd_run
    with small_disk(tmp_path / "disk", "256k") as disk:
        run = disk / "run"
        run.mkdir()
        for name in ("config.yaml", "corpora", "tokenizer", "data", "train", "checkpoints"):
            (run / name).symlink_to(run_dir / name)
        result = occi("export", str(config), "--run-dir", str(run))
        left = [p.name for p in run.iterdir() if p.name == "hf" or p.name.endswith(".tmp")]
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("occi: error:")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = errors[0]
    assert line.startswith(f"occi: error: {run / 'hf' / 'model.safetensors'}: no space left on the device: "
                           "it needs about "), line
    assert " is free in " in line
    assert left == []


# ---------------------------------------------------------------- the run lock and orphaned ranks

def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (torchrun and its ranks under `occi train`), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _describe(pids: set[int]) -> list[str]:
    described = []
    for pid in sorted(pids):
        if _running(pid):
            try:
                command = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
            except OSError:
                command = "?"
            described.append(f"{pid}: {command}")
    return described


@pytest.mark.slow
def test_a_training_locks_its_run_and_its_ranks_die_with_the_launcher(prepared, tmp_path):
    """A second `occi train` on a run in training is refused with the holder named; SIGKILL to
    `occi train` alone ends torchrun and the rank too (nothing trains on detached), and the next
    command takes the dead process's lock over."""
    run_dir = fresh_copy(prepared, tmp_path)
    config = write_run_config(tmp_path, steps=2000, save_interval=2, eval_interval=2000)
    proc = _start_training(config, run_dir)
    workers: set[int] = set()
    try:
        _wait_for_step(run_dir, 2, proc)
        # the step's log line comes before its checkpoint is published: wait for that too, so that
        # the kill below always leaves a checkpoint to resume from, however loaded the machine
        deadline = time.monotonic() + 180
        while not (run_dir / "checkpoints" / "latest").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint was published"
            time.sleep(0.05)
        second = occi("train", str(config), "--run-dir", str(run_dir))
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"is in use by pid {proc.pid} on " in second.stderr and "(occi train, since" in second.stderr
        assert "Traceback" not in second.stderr
        workers = _descendants(proc.pid)
        assert len(workers) >= 2, workers  # torchrun and its rank
        os.kill(proc.pid, signal.SIGKILL)  # the launcher alone, not its process group
        proc.wait()
        deadline = time.monotonic() + 120
        while any(_running(pid) for pid in workers):
            assert time.monotonic() < deadline, f"still running after their launcher died: {_describe(workers)}"
            time.sleep(0.2)
    finally:  # whatever a failed check left behind (a rank has a session of its own)
        for pid in [proc.pid, *workers, *(child for pid in workers for child in _descendants(pid))]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    reached = int((run_dir / "checkpoints" / "latest").read_text())
    after = write_run_config(tmp_path, "after.yaml", steps=2000, save_interval=2, eval_interval=2000, stop_after_steps=1)
    third = occi("train", str(after), "--run-dir", str(run_dir), "--reconfigure")
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"taking over the lock of pid {proc.pid} on " in third.stderr and "no longer running" in third.stderr
    assert f"resumed from step {reached}" in third.stdout
    assert not (run_dir / "lock").read_text()  # released cleanly: nothing for the next one to take over


def test_the_lock_nests_in_one_process_and_is_taken_over_from_a_killed_one(tmp_path, capsys):
    from occi import runlock
    from occi.errors import OcciError

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom occi import runlock\n"
                               f"with runlock.hold({str(tmp_path)!r}, 'occi test'):\n"
                               "    print('held', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OcciError, match=f"in use by pid {holder.pid} on .* \\(occi test, since"):
            with runlock.hold(tmp_path, "occi second"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with runlock.hold(tmp_path, "occi outer"):
        assert f"taking over the lock of pid {holder.pid} on " in capsys.readouterr().err
        with runlock.hold(tmp_path, "occi inner"):  # `occi run` -> its train stage: no deadlock
            assert runlock.holder(tmp_path)["command"] == "occi outer"
        child = subprocess.run([sys.executable, "-c", "from occi import runlock\n"
                                f"with runlock.hold({str(tmp_path)!r}, 'occi child'): print('ok')"],
                               capture_output=True, text=True)
        assert child.stdout.strip() == "ok", child.stderr  # a child of the holder works under its lock
    assert runlock.holder(tmp_path) is None
