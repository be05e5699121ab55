"""The documentation: the site builds in MkDocs' strict mode (a broken link or a missing page fails),
its generated references name every config key and every command, and the README stays short with
links that resolve."""
from __future__ import annotations

import argparse
import dataclasses
import html
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from occi import cli
from occi.pipeline import STAGES


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    built = _build(REPO / "mkdocs.yml", site)
    assert built.returncode == 0, built.stderr[-3000:]
    return site


def _code_cells(page: Path) -> set[str]:
    """The text of every <code> element of a built page."""
    return {html.unescape(text) for text in re.findall(r"<code>([^<]*)</code>", page.read_text(encoding="utf-8"))}


def _config_classes() -> list[type]:
    modules = ["occi.config"] + [f"occi.{path.parent.name}.config" for path in sorted((REPO / "occi").glob("*/config.py"))]
    classes = []
    for name in modules:
        module = importlib.import_module(name)
        classes += [obj for obj in vars(module).values()
                    if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == name]
    return classes


def test_every_config_key_appears_in_the_configuration_reference(site):
    keys = _code_cells(site / "reference" / "config.html")
    last_parts = {key.rsplit(".", 1)[-1].removesuffix("[]") for key in keys}
    classes = _config_classes()
    assert len(classes) >= 20  # the reader of this test found the config modules
    missing = [f"{cls.__name__}.{field.name}" for cls in classes for field in dataclasses.fields(cls)
               if field.name not in last_parts]
    assert not missing
    for nested in ("corpora.langid.thresholds", "train.stability.inject[].fault", "sft.sources[].path",
                   "corpora.url_filter.lists[].kind", "corpora.quality.gopher_quality.min_stop_words"):
        assert nested in keys
    page = (site / "reference" / "config.html").read_text(encoding="utf-8")
    row = re.search(r"<code>heldout_fraction</code>.*?</tr>", page, re.S).group(0)
    assert "a number at least 0 and below 1" in row and "<code>0.1</code>" in row and "held out" in row


def _commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ("occi",)):
    subs = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(words), parser
    for name, child in (subs[0].choices.items() if subs else ()):
        yield from _commands(child, (*words, name))


def test_every_command_option_and_stage_appears_in_the_command_line_reference(site):
    page = site / "reference" / "cli.html"
    cells, text = _code_cells(page), html.unescape(page.read_text(encoding="utf-8"))
    found = list(_commands(cli.make_parser()))
    assert len(found) >= 20
    for command, parser in found:
        assert command in cells, command
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in cells or any(cell.startswith(flag + ",") for cell in cells), (command, flag)
    for stage in STAGES:
        assert f"occi {' '.join(stage.command)}" in cells and f"<run>/{stage.folder}/" in text


def test_the_strict_build_fails_on_a_broken_link(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the stages](stages/nowhere.md).\n", encoding="utf-8")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    config.update(docs_dir=str(docs), nav=[{"Home": "index.md"}],
                  hooks=[str(REPO / hook) for hook in config["hooks"]])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    built = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0 and "stages/nowhere.md" in built.stderr


def test_the_readme_is_short_and_its_links_resolve():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert targets and all((REPO / target).exists() for target in targets if "://" not in target)
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    pages = set(re.findall(r"'([\w/.-]+\.md)'", str(nav)))
    generated = {"reference/config.md", "reference/cli.md", "reference/modules.md"}
    assert all((REPO / "docs" / page).exists() for page in pages - generated)
