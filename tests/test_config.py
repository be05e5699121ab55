"""Run configs: shipped ones parse; every user mistake is one clear line and exit code 2."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from conftest import REPO, occi
from occi import config
from occi.assets import recipe_names
from occi.errors import OcciError


@pytest.mark.parametrize("name", recipe_names("configs"))
def test_every_shipped_run_config_parses(name):
    cfg = config.load(name)
    assert cfg.languages and cfg.corpora.sources


@pytest.mark.parametrize("name", recipe_names("corpora"))
def test_every_shipped_corpus_recipe_parses(tmp_path, name):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "languages": ["de"], "corpora": name}))
    assert config.load(str(path)).corpora.sources


def _load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OcciError) as err:
        config.load(str(path))
    return str(err.value)


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    message = _load_error(tmp_path, "name: x\nlanguages: [de]\ncorpora: demo\nlanguage: [fr]\n")
    assert "run.yaml" in message and "language" in message and "did you mean 'languages'" in message


def test_unknown_nested_key(tmp_path):
    message = _load_error(tmp_path, "name: x\nlanguages: [de]\ncorpora: {recipe: demo, dedup: {band: 3}}\n")
    assert "dedup.band" in message and "did you mean 'bands'" in message


def test_wrong_type(tmp_path):
    message = _load_error(tmp_path, "name: x\nlanguages: [de]\ncorpora: {recipe: demo, workers: many}\n")
    assert "workers" in message and "expected an integer" in message and "'many'" in message


def test_unknown_language(tmp_path):
    message = _load_error(tmp_path, "name: x\nlanguages: [de, xx]\ncorpora: demo\n")
    assert "unknown language code 'xx'" in message and "ISO 639-1" in message


def test_threshold_out_of_range(tmp_path):
    message = _load_error(tmp_path, "name: x\nlanguages: [de]\ncorpora: {recipe: demo, langid: {thresholds: {de: 3}}}\n")
    assert "thresholds.de" in message and "between 0 and 1" in message


def test_missing_required_key(tmp_path):
    message = _load_error(tmp_path, "name: x\ncorpora: demo\n")
    assert "languages" in message and "required key is missing" in message


def test_invalid_yaml_names_line(tmp_path):
    message = _load_error(tmp_path, "name: x\nlanguages: [de\ncorpora: demo\n")
    assert "run.yaml" in message and "invalid YAML" in message


def test_missing_config_file_and_unknown_recipe(tmp_path):
    with pytest.raises(OcciError, match="no such file"):
        config.load(str(tmp_path / "nope.yaml"))
    with pytest.raises(OcciError, match="neither a file nor a configs recipe"):
        config.load("no-such-recipe")
    message = _load_error(tmp_path, "name: x\nlanguages: [de]\ncorpora: missing-recipe\n")
    assert "corpora recipe" in message and "demo" in message


def test_recipe_override_keeps_recipe_and_replaces_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: x\nlanguages: [de]\ncorpora: {recipe: demo, workers: 1}\n")
    cfg = config.load(str(path))
    assert cfg.corpora.workers == 1
    assert cfg.corpora.sources[0].name == "samples"
    assert Path(cfg.corpora.base_dir) == REPO / "corpora"


def test_cli_reports_user_errors_in_one_line_with_exit_code_2(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: x\nlanguages: [de]\ncorpora: {recipe: demo, workerz: 1}\n")
    result = occi("corpora", "build", str(path), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("occi: error: ")
    assert "Traceback" not in result.stderr and "workerz" in result.stderr


def _config_dataclasses():
    modules = ["occi/config.py", "occi/languages.py"] + sorted(
        str(p.relative_to(REPO)) for p in (REPO / "occi").glob("*/config.py"))
    for module in modules:
        tree = ast.parse((REPO / module).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "dataclass" or isinstance(d, ast.Call) and getattr(d.func, "id", "") == "dataclass"
                for d in node.decorator_list
            ):
                yield module, node


def test_every_config_field_has_a_docstring():
    missing = []
    for module, node in _config_dataclasses():
        body = node.body
        for i, item in enumerate(body):
            if isinstance(item, ast.AnnAssign):
                following = body[i + 1] if i + 1 < len(body) else None
                if not (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                        and isinstance(following.value.value, str)):
                    missing.append(f"{module}:{node.name}.{item.target.id}")
    assert not missing, f"fields without a docstring: {missing}"


def test_resolved_config_is_written_and_reloads(tmp_path):
    cfg = config.load("demo")
    path = config.write_resolved(cfg, tmp_path)
    data = yaml.safe_load(path.read_text())
    assert data["languages"] == cfg.languages
    assert data["corpora"]["dedup"]["bands"] == 14
    assert [f.name for f in dataclasses.fields(cfg)][:2] == ["name", "languages"]
