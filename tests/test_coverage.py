"""Benchmark coverage per language: generated from the language table, every task real."""
from __future__ import annotations

import pytest
import yaml

from conftest import REPO, occi
from occi import languages
from occi.eval import coverage, eu20, sib200
from occi.eval.suites import Cell, cells
from occi.eval.tasks import shipped_folders


@pytest.fixture(scope="module")
def manager():
    """lm-eval's task index with occi's shipped folders (indexing takes ~15 s: built once)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(folder) for folder in shipped_folders()])


def test_every_task_of_the_coverage_table_exists_in_lm_eval_or_occis_folders(manager):
    cover = coverage.table()
    assert list(cover) == list(languages.LANGUAGES)
    named = {task for tasks in cover.values() for task in tasks.values()}
    assert not named - set(manager.all_tasks), sorted(named - set(manager.all_tasks))
    occi_named = {task for tasks in cover.values() for family, task in tasks.items() if family in languages.OCCI_FAMILIES}
    assert {manager.task_index[t].yaml_path.is_relative_to(REPO / "eval") for t in occi_named} == {True}
    # the EU20 and SIB-200 groups name exactly the generated leaves
    for family in eu20.FAMILIES:
        assert manager.task_index[f"{family}_eu20"].kind.name == "GROUP"
    group = manager.task_index["sib200"]
    assert group.kind.name == "GROUP" and group.yaml_path.parent == REPO / "eval" / "tasks" / "occi_sib200"
    assert group.cfg["task"] == [cover[code]["sib200"] for code in languages.LANGUAGES]


def test_every_eu_language_has_two_families_and_upstream_gaps_have_a_stated_reason():
    for code in languages.EU_OFFICIAL:
        assert len(coverage.families(code)) >= coverage.MINIMUM, (code, coverage.families(code))
        upstream = coverage.upstream_families(code)
        assert len(upstream) >= coverage.MINIMUM or coverage.GAP_REASONS.get(code), (code, upstream)
    assert coverage.shortfalls() == {}
    # lm-eval alone leaves Irish and Maltese with one family each; SIB-200 (occi's folder) is the second
    assert set(coverage.upstream_shortfalls()) == {"ga", "mt"} and all(coverage.upstream_shortfalls().values())
    assert coverage.families("ga") == ["multiblimp", "sib200"] and coverage.families("mt") == ["belebele", "sib200"]
    assert {"belebele", "multiblimp"} <= set(coverage.upstream_families("lv"))
    assert len(coverage.upstream_families("sl")) >= 3
    # every language of the table has SIB-200, under FLORES-200's code
    assert {code: tasks["sib200"] for code, tasks in coverage.table().items()} == {
        code: f"sib200_{code}" for code in languages.LANGUAGES}
    assert sib200.data_files("et")["validation"] == "hf://datasets/Davlan/sib200/data/est_Latn/dev.tsv"
    assert sib200.data_files("no")["test"] == "hf://datasets/Davlan/sib200/data/nob_Latn/test.tsv"


def test_the_coverage_document_counts_upstream_and_all_families():
    text = coverage.markdown(["ga", "mt", "de"])
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:3] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| lang")}
    assert rows == {"ga": ["1", "2"], "mt": ["1", "2"], "de": ["14", "20"]}
    assert "fewer than 2 families (upstream and occi's task folders): none" in text
    assert "`sib200_ga`" in text and "- ga: lm-eval 0.4.13 has only MultiBLiMP" in text


def test_the_suite_has_a_cell_per_family_with_its_filter():
    found = {(c.language, c.family): c for c in cells("eu-leaderboard", ["de", "pt", "ga"], {})}
    assert found[("de", "gsm8k_eu20")].filter == "flexible-extract" and found[("de", "arc")].filter == "none"
    assert found[("pt", "mmlu_eu20")].task == "mmlu_eu20_pt" and ("ga", "arc_eu20") not in found
    assert found[("ga", "sib200")] == Cell("eu-leaderboard", "ga", "sib200", "sib200_ga", 0, "acc_norm")
    leaf = yaml.safe_load((REPO / "eval" / "tasks" / "occi_eu20" / "arc" / "arc_eu20_pt.yaml").read_text())
    assert leaf["dataset_kwargs"]["data_files"]["test"] == "hf://datasets/openGPT-X/arcx/arc_challenge_PT-PT_test.jsonl"


def test_every_referenced_dataset_has_its_format_recorded(manager, monkeypatch):
    import lm_eval.tasks

    from occi.preflight.manifest import task_datasets

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", lambda **_: manager)  # the index built above

    named = sorted({task for tasks in coverage.table().values() for family, task in tasks.items()
                    if family not in languages.OCCI_FAMILIES})
    paths = {path for path, _ in task_datasets(named)}
    assert paths and not paths - set(coverage.DATASETS), sorted(paths - set(coverage.DATASETS))
    # script datasets: recorded, and no task of the table reads them
    dropped = {name for name, (_, loads, _) in coverage.DATASETS.items() if loads.startswith("no")}
    assert dropped == {"facebook/flores", "Muennighoff/xwinograd"} and not dropped & paths


def test_occi_coverage_prints_the_table_and_draws_it(tmp_path):
    result = occi("coverage", "--languages", "lv,ga", "--png", str(tmp_path / "cov.png"))
    assert result.returncode == 0, result.stderr
    assert "`belebele_lvs_Latn`" in result.stdout and "`sib200_ga`" in result.stdout and "- ga:" in result.stdout
    assert (tmp_path / "cov.png").read_bytes()[:4] == b"\x89PNG"
    bad = occi("coverage", "--languages", "xx")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "xx" in bad.stderr


def test_occis_task_folders_read_their_data_from_any_working_directory(tmp_path, monkeypatch):
    """lm-eval resolves relative data files against the working directory; occi's folders do not."""
    import shutil

    from lm_eval.tasks import TaskManager

    moved = tmp_path / "elsewhere" / "eval"
    shutil.copytree(REPO / "eval", moved)  # the repository (or an installed package) anywhere
    monkeypatch.chdir(tmp_path)
    folder_index = TaskManager(include_path=str(moved / "tasks" / "occi_mc"), include_defaults=False)
    task = folder_index.load(["occi_mc_de"])["tasks"]["occi_mc_de"]
    lines = (REPO / "eval" / "data" / "mc" / "de.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(list(task.test_docs())) == len(lines)
    leaves = [yaml.safe_load(p.read_text()) for p in (REPO / "eval" / "tasks").rglob("*.yaml")]
    files = [f for leaf in leaves for f in ((leaf or {}).get("dataset_kwargs") or {}).get("data_files", {}).values()]
    assert files and not [f for f in files if f.startswith("/")]


def test_the_leaderboard_reads_a_family_scored_under_a_filter(tmp_path):
    """MMLU-ProX and EU20-GSM8K report exact_match under a filter, not under "none"."""
    import json

    from occi.report import leaderboard

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"model_name": "m", "results": {
        "mmlu_prox_de": {"exact_match,custom-extract": 0.25}, "gsm8k_eu20_fr": {"exact_match,flexible-extract": 0.5,
                                                                                "exact_match,strict-match": 0.4}}}))
    board = leaderboard.read([str(path)])
    assert not board.problems, board.problems
    assert {(lang, family): cell["value"] for (_, lang, family), cell in board.cells.items()} == {
        ("de", "mmlu_prox"): 0.25, ("fr", "gsm8k_eu20"): 0.5}
