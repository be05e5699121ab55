"""The joins between stages: one stage list behind the CLI, `occi run` and the SLURM plan; one run
directory object; the config frozen into <run>/config.yaml when a run starts."""
from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import REPO, occi
from occi import cli, config, execution, pipeline
from occi.errors import OcciError
from occi.hub import Item
from occi.pipeline import STAGES, Stage
from occi.preflight.manifest import needed_items
from occi.report.card import card_text
from occi.rundir import RunDir
from occi.slurm.submit import load_profile, plan


def _cli_stage_commands(parser) -> dict[tuple[str, ...], str]:
    """Every subcommand that runs a stage, with the stage it runs."""
    found = {}

    def walk(parser, words):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if sub.get_default("stage"):
                        found[(*words, name)] = sub.get_default("stage")
                    walk(sub, (*words, name))

    walk(parser, ())
    return found


def test_cli_occi_run_and_the_slurm_plan_list_the_same_stages(tmp_path):
    assert _cli_stage_commands(cli.make_parser()) == {stage.command: stage.name for stage in STAGES}
    cfg = config.load("demo")
    names = [stage.name for stage in pipeline.stages_of(cfg)]  # the demo starts from scratch, no chat: no import, no sft, no distill, no dpo, no merge
    assert names == [stage.name for stage in STAGES if stage.name not in ("import", "sft", "distill", "dpo", "merge")]
    steps = plan(cfg, RunDir(tmp_path / "run"), load_profile("local")[0])
    assert list(dict.fromkeys(step.stage for step in steps)) == names
    for stage in STAGES:  # what `occi run` does for each stage of a finished run
        folder = getattr(RunDir(tmp_path / "run"), stage.folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "_DONE").write_text("{}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        execution.run_all(cfg, RunDir(tmp_path / "run"))
    printed = [line.split("]")[1].split(":")[0].strip() for line in out.getvalue().splitlines() if "already done" in line]
    assert printed == names


def test_a_run_with_a_distill_section_has_the_distill_stage_as_a_slurm_array(tmp_path):
    cfg = config.load("demo-distill")
    assert "distill" in [stage.name for stage in pipeline.stages_of(cfg)]
    steps = [step for step in plan(cfg, RunDir(tmp_path / "run"), load_profile("local")[0]) if step.stage == "distill"]
    assert [step.name for step in steps] == ["distill-generate", "distill-join"]


def test_a_new_stage_is_one_module_and_one_entry(tmp_path, monkeypatch):
    """A stage module outside occi, added to the list: the CLI runs it, `occi run` runs it in order
    and names its result, the SLURM plan schedules it as an array with a joining step, the model
    card shows its section and `occi fetch` would fetch what it reads; nothing inside occi changes."""
    module = tmp_path / "occi_extra_stage.py"
    module.write_text(textwrap.dedent('''
        from occi.fsutil import mark_done
        from occi.hub import Item
        from occi.pipeline import StageResult

        def run(cfg, run, share, note="hello"):
            folder = run.stage_folder("extra")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"share-{share.rank}-of-{share.world_size}.txt").write_text(note)
            if share.whole:
                mark_done(folder)
            return StageResult(f"extra: {note} from {share.rank}/{share.world_size}", complete=share.whole)

        def shard_count(cfg, run):
            return 3

        def card_section(cfg, run, out_dir):
            notes = sorted(path.name for path in run.stage_folder("extra").glob("share-*.txt"))
            return "## Extra notes\\n\\n" + ", ".join(notes)

        def fetch_items(cfg):
            return [Item("model", "occi-test/extra-reference")]
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    extra = Stage("extra", ("extra",), "a stage written for this test", "extra", "occi_extra_stage",
                  shards_over="languages", options=(pipeline.Option("--note", "what to write", default="hello"),),
                  card_section="occi_extra_stage:card_section", fetch_items="occi_extra_stage:fetch_items",
                  results=(("extra notes", "extra/share-0-of-1.txt"),))
    monkeypatch.setattr(pipeline, "STAGES", [extra])
    run_dir = tmp_path / "run"
    args = cli.make_parser().parse_args(["extra", "demo", "--run-dir", str(run_dir), "--rank", "1", "--world-size", "3",
                                         "--note", "hi"])
    assert cli.main(["extra", "demo", "--run-dir", str(run_dir), "--rank", "1", "--world-size", "3", "--note", "hi"]) == 0
    assert args.stage == "extra" and (run_dir / "extra" / "share-1-of-3.txt").read_text() == "hi"
    steps = plan(config.load("demo"), RunDir(run_dir), load_profile("local")[0])
    assert [(s.name, s.array) for s in steps] == [("extra-shards", 3), ("extra-join", None)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["run", "demo", "--run-dir", str(run_dir)]) == 0
    assert ["extra", "notes", str(run_dir / "extra" / "share-0-of-1.txt")] in [line.split() for line in out.getvalue().splitlines()]
    assert RunDir(run_dir).is_done("extra") and plan(config.load("demo"), RunDir(run_dir), load_profile("local")[0]) == []
    cfg = config.load("demo")
    card = card_text(cfg, RunDir(run_dir), tmp_path / "card")
    assert "## Extra notes\n\nshare-0-of-1.txt, share-1-of-3.txt" in card
    assert Item("model", "occi-test/extra-reference") in needed_items(cfg)


def _small_config(folder: Path, **changes) -> Path:
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data.update({"name": "frozen", "languages": ["de", "fr"]})
    data["train"] = {**data["train"], **changes}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_run_whose_user_yaml_changed_after_it_started_says_so(tmp_path):
    run_dir = tmp_path / "run"
    first = occi("slurm", "submit", str(_small_config(tmp_path)), "--run-dir", str(run_dir), "--cluster", "local", "--dry-run")
    assert first.returncode == 0, first.stderr
    frozen = run_dir / "config.yaml"
    assert yaml.safe_load(frozen.read_text())["train"]["steps"] == 60
    # every job of the plan reads the frozen config, not the user's file
    assert all(str(frozen) in path.read_text() for path in (run_dir / "slurm").glob("*.sbatch"))

    changed = occi("slurm", "submit", str(_small_config(tmp_path, steps=80)), "--run-dir", str(run_dir),
                   "--cluster", "local", "--dry-run")
    assert changed.returncode == 2
    assert "train.steps: 60 -> 80" in changed.stderr and str(frozen) in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    assert yaml.safe_load(frozen.read_text())["train"]["steps"] == 60  # never silently mixed

    as_started = occi("slurm", "submit", str(frozen), "--run-dir", str(run_dir), "--cluster", "local", "--dry-run")
    assert as_started.returncode == 0, as_started.stderr

    on_purpose = occi("slurm", "submit", str(_small_config(tmp_path, steps=80)), "--run-dir", str(run_dir),
                      "--cluster", "local", "--dry-run", "--reconfigure")
    assert on_purpose.returncode == 0 and "train.steps: 60 -> 80" in on_purpose.stderr
    assert yaml.safe_load(frozen.read_text())["train"]["steps"] == 80
    assert "train.steps: 60 -> 80" in (run_dir / "config-changes.log").read_text()


def test_the_frozen_config_reads_back_the_same():
    for name in ("demo",):
        cfg = config.load(name)
        assert config.changes(config._comparable(cfg), config._comparable(cfg)) == []


def test_require_gives_the_same_error_for_every_stage(tmp_path):
    run = RunDir(tmp_path / "run")
    for stage in STAGES:
        with pytest.raises(OcciError, match=rf"the {stage.name} stage has not completed; run `occi {' '.join(stage.command)}` first"):
            run.require(stage.name)


def test_a_moved_run_finds_its_data_at_the_new_place(tmp_path):
    """blend.json stores paths relative to the run; a copied run resolves them where it now is."""
    run = RunDir(tmp_path / "old")
    run.data.mkdir(parents=True)
    (run.data / "_DONE").write_text("{}")
    run.blend_file.write_text('{"tokenizer": "tokenizer/tokenizer.model", "languages": {"de": '
                              '{"prefix": "data/de_text_document", "valid_prefix": "data/de_valid_text_document"}}, '
                              '"megatron_data_path": "1.000000 data/de_text_document"}')
    shutil.copytree(run.root, tmp_path / "new")
    shutil.rmtree(run.root)
    moved = RunDir(tmp_path / "new").read_blend()
    assert moved["languages"]["de"]["prefix"] == str(tmp_path / "new" / "data" / "de_text_document")
    assert moved["tokenizer"] == str(tmp_path / "new" / "tokenizer" / "tokenizer.model")
    assert moved["megatron_data_path"] == f"1.000000 {tmp_path / 'new' / 'data' / 'de_text_document'}"


def test_file_system_faults_are_one_line_naming_the_path(tmp_path):
    """An OSError anywhere (a file where a folder must be, a folder where a file must be) is one
    `occi: error:` line naming the path, exit 2, never a traceback."""
    results = tmp_path / "results.json"
    results.write_text('{"results": {"occi_mc_de": {"acc_norm,none": 0.5}}, "model_name": "m"}')
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    board = occi("leaderboard", str(results), "--out", str(blocker / "board"))
    assert board.returncode == 2 and "Traceback" not in board.stderr
    assert board.stderr.startswith("occi: error:") and str(blocker) in board.stderr
    assert len(board.stderr.strip().splitlines()) == 1
    run_dir = tmp_path / "run"
    (run_dir / "corpora").mkdir(parents=True)
    (run_dir / "corpora" / "stats.json").mkdir()  # a folder where the stage writes a file
    (run_dir / "corpora" / "_DONE").write_text("{}")
    card = occi("card", "demo", "--run-dir", str(run_dir), "--out", str(blocker / "MODEL_CARD.md"))
    assert card.returncode == 2 and "Traceback" not in card.stderr and len(card.stderr.strip().splitlines()) == 1


def test_a_stage_with_several_arrays_is_planned_as_a_chain_of_arrays(tmp_path, monkeypatch):
    """Stage.array_steps: each array waits for the one before, with its own task count and options."""
    module = tmp_path / "occi_arrays_stage.py"
    module.write_text("def shard_count(cfg, run):\n    return 5\n\ndef pair_count(cfg, run):\n    return 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    staged = Stage("arrays", ("arrays",), "a stage written for this test", "corpora", "occi_arrays_stage",
                   shards_over="shards", join_step="last",
                   array_steps=(pipeline.ArrayStep("first", ("--phase", "one")),
                                pipeline.ArrayStep("second", ("--phase", "two"), "pair_count")))
    monkeypatch.setattr(pipeline, "STAGES", [staged])
    steps = plan(config.load("demo"), RunDir(tmp_path / "run"), load_profile("local")[0])
    assert [(s.name, s.array, s.after) for s in steps] == [
        ("arrays-first", 5, []), ("arrays-second", 2, ["arrays-first"]), ("arrays-last", None, ["arrays-second"])]
    assert steps[1].commands[0][-2:] == ["--phase", "two"] and "--rank" not in steps[2].commands[0]
