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


def test_eval_languages_must_be_run_languages(tmp_path):
    message = _load_error(tmp_path, "name: x\nlanguages: [de, fr]\ncorpora: demo\neval: {languages: [de, sv]}\n")
    assert "eval.languages: 'sv' is not one of the run's languages (de, fr)" in message
    path = tmp_path / "ok.yaml"
    path.write_text("name: x\nlanguages: [de, fr]\ncorpora: demo\neval: {languages: [fr]}\n")
    assert config.load(str(path)).eval_languages == ["fr"]


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


# ---------------------------------------------------------------- names, ranges, parallel layout

@pytest.mark.parametrize("name", ["../../etc", "/tmp/abs", "", "a/b", ".hidden", "x y", "-flag"])
def test_run_name_must_be_a_safe_folder_name(tmp_path, name):
    message = _load_error(tmp_path, yaml.safe_dump({"name": name, "languages": ["de"], "corpora": "demo"}))
    assert "name:" in message and "cannot name a run folder" in message and ": :" not in message


def test_a_plain_run_name_is_accepted(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "eu-1b_v2.3", "languages": ["de"], "corpora": "demo"}))
    assert config.load(str(path)).name == "eu-1b_v2.3"


@pytest.mark.parametrize("train, expected", [
    ({"tensor_parallel": 3}, "model.num_attention_heads (4) is not a multiple of train.tensor_parallel (3)"),
    ({"tensor_parallel": 4}, "model.num_query_groups (2) is not a multiple of train.tensor_parallel (4)"),
    ({"pipeline_parallel": 3}, "model.num_layers (2) is not a multiple of train.pipeline_parallel (3)"),
    ({"data_parallel": 3, "micro_batch_size": 1, "global_batch_size": 8}, "global_batch_size 8 is not a multiple"),
])
def test_parallel_layout_is_checked_when_the_config_is_loaded(tmp_path, train, expected):
    text = yaml.safe_dump({"name": "x", "languages": ["de"], "corpora": "demo", "model": "tiny", "train": train})
    assert expected in _load_error(tmp_path, text)
    (tmp_path / "run.yaml").write_text(text)
    result = occi("slurm", "submit", str(tmp_path / "run.yaml"), "--cluster", "local", "--dry-run",
                  "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ffn_width_and_padded_vocabulary_follow_the_tensor_parallel_size():
    from occi.train.config import ModelConfig, TrainConfig
    from occi.train.parallel import layout_problems

    model = ModelConfig(num_layers=2, hidden_size=96, ffn_hidden_size=250, num_attention_heads=6,
                        num_query_groups=6, seq_length=16, make_vocab_size_divisible_by=128)
    problems = layout_problems(model, TrainConfig(tensor_parallel=3), vocab_size=1000)
    assert len(problems) == 1 and "ffn_hidden_size (250)" in problems[0]
    model.ffn_hidden_size = 252
    assert layout_problems(model, TrainConfig(tensor_parallel=3), vocab_size=1000) == []


@pytest.mark.parametrize("section, expected", [
    ("heldout_max_docs: -3", "heldout_max_docs: expected at least 0, got -3"),
    ("heldout_fraction: .nan", "heldout_fraction: expected"),
    ("seed: -1", "seed: expected at least 0"),
    ("corpora: {recipe: demo, normalize: {max_doc_chars: -5}}", "max_doc_chars: expected at least 1, got -5"),
    ("corpora: {recipe: demo, langid: {top_k: 0}}", "top_k: expected"),
    ("corpora: {recipe: demo, quality: {gopher_quality: {min_doc_words: 500, max_doc_words: 100}}}",
     "min_doc_words 500 is above max_doc_words 100"),
    ("corpora: {recipe: demo, quality: {gopher_repetition: {top_ngram_frac: {0: 0.2}}}}", "top_ngram_frac: key 0"),
    ("corpora: {recipe: demo, sources: [{name: a, kind: jsonl, path: x, limit: 0}]}", "limit: expected"),
    ("train: {lr: 0}", "lr: expected a number above 0, got 0"),
    ("train: {lr: .inf}", "lr: expected"),
    ("train: {adam_beta2: 1.5}", "adam_beta2: expected"),
    ("data: {weights: {de: -1}}", "weights.de: expected at least 0"),
    ("tokenizer: {vocab_size: 4}", "vocab_size: expected at least 8"),
    ("eval: {num_fewshot: {arc: -2}}", "num_fewshot.arc: expected"),
])
def test_numeric_settings_out_of_range_are_one_line_errors(tmp_path, section, expected):
    text = "name: x\nlanguages: [de]\n" + ("" if section.startswith("corpora") else "corpora: demo\n") + section + "\n"
    message = _load_error(tmp_path, text)
    assert expected in message and "\n" not in message


def _numeric_fields(cls):
    from typing import get_type_hints

    for f in dataclasses.fields(cls):
        hint = str(get_type_hints(cls)[f.name])
        if f.init and ("int" in hint or "float" in hint) and "str" not in hint.split("[")[0]:
            yield f.name, hint


def test_every_numeric_setting_of_every_config_is_range_checked():
    """NaN is outside every range: a numeric field that takes it has no range check."""
    from occi.corpora import config as corpora_config
    from occi.data.config import DataConfig
    from occi.eval.config import EvalConfig
    from occi.merge.config import CheckpointAverage, MergeConfig
    from occi.report.config import CardConfig
    from occi.slurm.config import ClusterProfile
    from occi.tokenizer.config import TokenizerConfig
    from occi.train.config import GoldfishConfig, ModelConfig, TrainConfig

    source = corpora_config.SourceConfig(name="a", kind="jsonl", path="x")
    model = dict(num_layers=2, hidden_size=8, ffn_hidden_size=8, num_attention_heads=2, num_query_groups=2, seq_length=8)
    cases = [
        (source.__class__, {"name": "a", "kind": "jsonl", "path": "x"}), (corpora_config.NormalizeConfig, {}),
        (corpora_config.LangIdConfig, {}), (corpora_config.GopherQualityConfig, {}),
        (corpora_config.GopherRepetitionConfig, {}), (corpora_config.FineWebQualityConfig, {}),
        (corpora_config.DedupConfig, {}), (corpora_config.CorporaConfig, {"sources": [source]}),
        (ModelConfig, model), (TrainConfig, {}), (GoldfishConfig, {}), (DataConfig, {}), (TokenizerConfig, {}), (EvalConfig, {}),
        (ClusterProfile, {"description": "d", "cpu_partition": "c", "gpu_partition": "g"}), (CardConfig, {}),
        (MergeConfig, {"models": ["a", "b"]}), (CheckpointAverage, {"of": "sft"}),
        (config.RunConfig, {"name": "x", "languages": ["de"], "corpora": corpora_config.CorporaConfig(sources=[source])}),
    ]
    unchecked = []
    for cls, base in cases:
        for name, hint in _numeric_fields(cls):
            value = {"de" if "str" in hint else 2: float("nan")} if hint.startswith("dict") else float("nan")
            try:
                cls(**{**base, name: value})
            except ValueError:
                continue
            unchecked.append(f"{cls.__name__}.{name}")
    assert not unchecked, f"numeric settings without a range check: {unchecked}"


@pytest.mark.parametrize("args, expected", [
    (["slurm", "submit", "demo", "--cluster", "local", "--dry-run", "--chain", "0"], "--chain: expected at least 1, got 0"),
    (["corpora", "build", "demo", "--workers", "-1"], "--workers: expected at least 0, got -1"),
    (["corpora", "build", "demo", "--world-size", "0"], "--world-size: expected at least 1"),
    (["data", "prepare", "demo", "--rank", "-2"], "--rank: expected at least 0"),
])
def test_numeric_command_line_arguments_are_range_checked(tmp_path, args, expected):
    result = occi(*args, "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, expected", [
    ("name: x\nlanguages: [de, xx]\ncorpora: demo\n", "run.yaml: languages: unknown language code 'xx'"),
    ("name: x\nlanguages: [de]\ncorpora: demo\ntokenizer: no-such-tokenizer\n",
     "run.yaml: tokenizer: 'no-such-tokenizer' is neither a file nor a tokenizer recipe"),
    ("name: x\nlanguages: [de]\ncorpora: demo\ntokenizer: {extend: no-such-tokenizer}\nmodel: {base: some/base}\n",
     "run.yaml: tokenizer: 'no-such-tokenizer' is neither"),
    ("name: x\nlanguages: [de]\ncorpora: {recipe: demo, langid: {thresholds: {xx: 0.5}}}\n", "run.yaml: corpora"),
])
def test_unknown_language_and_recipe_name_the_file(tmp_path, text, expected):
    message = _load_error(tmp_path, text)
    assert expected in message and "\n" not in message


@pytest.mark.parametrize("value, expected", [
    ("100000000000", "seq_length: expected a number between 1 and 1048576, got 100000000000"),
    ("1e11", "expected an integer, got str '1e11' (YAML reads an exponent without a decimal point as text"),
])
def test_absurd_sequence_length_is_refused(tmp_path, value, expected):
    message = _load_error(tmp_path, f"name: x\nlanguages: [de]\ncorpora: demo\nmodel: {{recipe: tiny, seq_length: {value}}}\n")
    assert "run.yaml" in message and expected in message


@pytest.mark.parametrize("text, line", [
    ("name: x\nlanguages: [de]\ncorpora: demo\nseed: 1\nseed: 2\n", "line 5: key 'seed' is written twice (first on line 4)"),
    ("name: x\nlanguages: [de]\ncorpora: demo\ntrain:\n  steps: 5\n  lr: 0.1\n  steps: 50\n",
     "line 7: key 'steps' is written twice (first on line 5)"),
    ("name: x\nlanguages: [de]\ncorpora: {recipe: demo, workers: 1, workers: 2}\n", "key 'workers' is written twice"),
])
def test_a_key_written_twice_is_refused(tmp_path, text, line):
    message = _load_error(tmp_path, text)
    assert "run.yaml" in message and line in message and "keep one" in message


def test_yaml_merge_keys_may_still_override(tmp_path):
    path = tmp_path / "anchors.yaml"
    from occi.configtools import load_yaml

    path.write_text("common: &c {steps: 5, lr: 0.1}\ntrain: {<<: *c, steps: 7}\n", encoding="utf-8")
    assert load_yaml(path)["train"] == {"steps": 7, "lr": 0.1}


def test_default_warmup_is_clamped_but_a_written_one_is_checked(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: x\nlanguages: [de]\ncorpora: demo\nmodel: tiny\ntrain: {steps: 1}\n", encoding="utf-8")
    assert config.load(str(path)).train.warmup_steps == 0
    path.write_text("name: x\nlanguages: [de]\ncorpora: demo\nmodel: tiny\ntrain: {steps: 4}\n", encoding="utf-8")
    assert config.load(str(path)).train.warmup_steps == 3
    path.write_text("name: x\nlanguages: [de]\ncorpora: demo\nmodel: tiny\n", encoding="utf-8")
    assert config.load(str(path)).train.warmup_steps == 10
    message = _load_error(tmp_path, "name: x\nlanguages: [de]\ncorpora: demo\nmodel: tiny\ntrain: {steps: 1, warmup_steps: 10}\n")
    assert "warmup_steps 10 must be below steps 1" in message
