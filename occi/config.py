"""The run config: one YAML file, `languages:` declared once, one section per stage.

A stage section is either the name of a recipe shipped with occi (`corpora: demo` reads
corpora/demo.yaml), a path to a recipe file, or an inline mapping; an inline mapping may name
a `recipe:` to start from and override some of its keys. Relative paths in a recipe are
resolved against the folder of the file they are written in.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

import yaml

from occi import languages, ranges, runlock
from occi.assets import find_recipe
from occi.configtools import build, load_yaml, to_plain
from occi.chat.config import DistillConfig
from occi.corpora.config import CorporaConfig
from occi.corpora.reader import HeldoutRule
from occi.data.config import DataConfig
from occi.eval.config import EvalConfig
from occi.report.config import CardConfig, ProviderConfig
from occi.dpo.config import DPOConfig
from occi.merge.config import MergeConfig
from occi.sft.config import SFTConfig
from occi.tokenizer.config import TokenizerConfig
from occi.train.config import BaseModelConfig, ModelConfig, TrainConfig
from occi.train.parallel import check_layout
from occi.errors import OcciError
from occi.fsutil import atomic_write_text
from occi.pipeline import invalidate
from occi.rundir import RunDir

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A run name is one folder name under runs/: no separators, no leading dot, not empty."""


@dataclass
class RunConfig:
    name: str
    """Name of the run; the default run directory is runs/<name>. Letters, digits, '.', '_' and
    '-', starting with a letter or digit (it is used as a folder name)."""
    languages: list[str]
    """ISO 639-1 codes of the languages this run covers (occi/languages.py)."""
    corpora: CorporaConfig
    """The corpora stage: sources, language ID, filters, dedup."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """The shared tokenizer: a recipe under tokenizer/ (demo, eu-32k, eu-64k, eu-128k) or a mapping."""
    model: ModelConfig | BaseModelConfig | None = None
    """The model shape: a recipe under models/ (tiny, 125m, 1b, 7b) or a mapping; or
    {base: HF_ID_OR_FOLDER, revision: ...} to continue an open model (`occi import`)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Tokenized training data and the language blend."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Parallelism, batch, schedule, checkpoints."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation suites and lm-eval settings."""
    sft: SFTConfig | None = None
    """Supervised fine-tuning after pretraining (`occi sft`): chat data sources, checks, epochs,
    schedule; None: no SFT stage."""
    dpo: DPOConfig | None = None
    """Preference tuning after SFT (`occi dpo`): preference pairs, checks, loss, schedule; None: no DPO stage."""
    merge: MergeConfig | None = None
    """`occi merge`: the weighted average of exported models (<run>/merged); None: no merge stage."""
    card: CardConfig = field(default_factory=CardConfig)
    """What the model card says beyond the run's numbers (license, intended use)."""
    distill: DistillConfig | None = None
    """`occi distill`: a teacher's answers to prompts per language, as SFT data; None: no such stage."""
    provider: ProviderConfig = field(default_factory=ProviderConfig)
    """Who places the model on the EU market, and what only they know, for the public summary of
    training content (report/training-content-summary.md)."""
    seed: int = 1234
    """Seed for every random choice in the run."""
    heldout_fraction: float = HeldoutRule.fraction
    """Share of each language's documents held out from tokenizer and model training, for
    reports and evaluation (occi/corpora/reader.py has the rule)."""
    heldout_max_docs: int = HeldoutRule.max_docs
    """At most this many held-out documents per language."""
    source_file: str = ""
    """The YAML file this config was read from (set by the loader)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"name: {self.name!r} cannot name a run folder; use letters, digits, '.', '_' "
                             "and '-', starting with a letter or digit (e.g. eu-1b-v2)")
        if not self.languages:
            raise ValueError("languages: list at least one language code")
        for code in self.languages:
            try:
                languages.get(code)
            except OcciError as err:
                raise ValueError(f"languages: {err}") from None
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("languages: a language is listed twice")
        for code in self.eval.languages or []:
            if code not in self.languages:
                raise ValueError(f"eval.languages: {code!r} is not one of the run's languages "
                                 f"({', '.join(self.languages)}); list only those, or leave it unset for all")
        ranges.check(self, {"seed": ranges.at_least(0), "heldout_fraction": ranges.Range(0.0, 1.0, high_open=True),
                            "heldout_max_docs": ranges.at_least(0)})
        sources = [s.name for section in (self.corpora, self.sft, self.dpo) if section for s in section.sources]
        for source in self.provider.source_categories:
            if source not in sources:
                raise ValueError(f"provider.source_categories: {source!r} is not a source of this run "
                                 f"({', '.join(sources)}); name corpora, SFT or DPO sources only")
        if self.tokenizer.source != "train" and not isinstance(self.model, BaseModelConfig):
            raise ValueError(f"tokenizer: {self.tokenizer.source!r} keeps a base model's tokenizer; "
                             "name the base with model: {base: HF_ID_OR_FOLDER}")
        if isinstance(self.model, ModelConfig):  # where the model shape meets the parallel layout
            # (an imported base's shape is checked against the layout when `occi import` reads it)
            check_layout(self.model, self.train, self.tokenizer.vocab_size)
            tp = self.train.tensor_parallel
            if self.model.is_moe and tp > 1 and self.sft is not None and self.sft.seq_length:
                length = min(self.sft.seq_length, self.model.seq_length)
                if length % tp:
                    raise ValueError(f"sft.seq_length ({length}) is not a multiple of train.tensor_parallel ({tp}): "
                                     "a mixture of experts at TP > 1 trains with sequence parallelism, which gives "
                                     "each tensor-parallel rank an equal slice of the sequence")

    @property
    def heldout(self) -> HeldoutRule:
        """The run's one rule for which documents are held out (occi/corpora/reader.py)."""
        return HeldoutRule(self.heldout_fraction, self.heldout_max_docs)

    @property
    def eval_languages(self) -> list[str]:
        """The languages `occi eval` scores: eval.languages, or all of the run's."""
        return list(self.eval.languages or self.languages)

    @property
    def model_name(self) -> str:
        """The model's name on the card, in lm-eval results and on leaderboards."""
        return self.card.model_name or f"occi-{self.name}"


_SECTIONS = {"corpora": ("corpora", CorporaConfig), "tokenizer": ("tokenizer", TokenizerConfig),
             "model": ("models", ModelConfig)}


def _with_base_dir() -> tuple[str, ...]:
    """The inline sections whose settings hold paths relative to the config file (a `base_dir` field)."""
    hints = get_type_hints(RunConfig)

    def has_base_dir(kind: Any) -> bool:
        return is_dataclass(kind) and "base_dir" in {f.name for f in fields(kind)}

    return tuple(f.name for f in fields(RunConfig) if f.name not in _SECTIONS
                 and any(has_base_dir(kind) for kind in (hints[f.name], *get_args(hints[f.name]))))


_SECTIONS_WITH_BASE_DIR = _with_base_dir()


def load(config: str) -> RunConfig:
    """The run config from a path or a shipped recipe name (configs/<name>.yaml)."""
    path = find_recipe("configs", config)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise OcciError(f"{path}: expected a mapping of run settings, got {type(data).__name__}")
    data = dict(data)
    data["tokenizer"] = _tokenizer_policy(data.get("tokenizer", {}), path)
    if isinstance(data.get("model"), dict) and "base" in data["model"]:
        data["model"] = build(BaseModelConfig, _local_base(dict(data["model"]), path), f"{path}: model")
    for key, (kind, cls) in _SECTIONS.items():
        if data.get(key) is not None and not isinstance(data[key], BaseModelConfig):
            section, where = _resolve_section(kind, data[key], path, f"{path}: {key}")
            if "base_dir" not in {f.name for f in fields(cls)}:
                section.pop("base_dir", None)
            data[key] = build(cls, section, where)
    for key in _SECTIONS_WITH_BASE_DIR:  # their relative paths are relative to this file
        if isinstance(data.get(key), dict):
            data[key] = {**data[key], "base_dir": data[key].get("base_dir") or str(path.parent)}
    data["source_file"] = str(path)
    return build(RunConfig, data, f"{path}: ")


def _tokenizer_policy(value: Any, path: Path) -> Any:
    """`tokenizer: base` and `tokenizer: {extend: RECIPE, add: N}` as TokenizerConfig mappings."""
    if value == "base":
        return {"source": "base"}
    if isinstance(value, dict) and "extend" in value:
        value = dict(value)
        recipe = value.pop("extend")
        if not isinstance(recipe, str):
            raise OcciError(f"{path}: tokenizer.extend: expected a tokenizer recipe name or path, got {recipe!r}")
        return {"recipe": recipe, **value, "source": "extend"}
    return value


def _local_base(section: dict, config_path: Path) -> dict:
    """A base that names an existing folder (relative to the config's folder) becomes its absolute path."""
    base = section.get("base")
    if isinstance(base, str) and (config_path.parent / base).is_dir():
        section["base"] = str((config_path.parent / base).resolve())
    return section


def _resolve_section(kind: str, value: Any, config_path: Path, where: str) -> tuple[dict, str]:
    """A stage section as a mapping with `base_dir` set, recipe references followed, and
    where its keys are written (for error messages)."""
    if isinstance(value, str):
        try:
            recipe = find_recipe(kind, value)
        except OcciError as err:  # say which file named the missing recipe
            raise OcciError(f"{where.rstrip(': ')}: {err}") from None
        return _resolve_section(kind, load_yaml(recipe) or {}, recipe, f"{recipe}: ")
    if not isinstance(value, dict):
        raise OcciError(f"{where}: expected a recipe name or a mapping, got {value!r}")
    value = dict(value)
    base = value.pop("recipe", None)
    if base is not None:
        if not isinstance(base, str):
            raise OcciError(f"{where}.recipe: expected a recipe name or path, got {base!r}")
        merged, _ = _resolve_section(kind, base, config_path, where)
        merged.update(value)  # top-level keys of the section replace the recipe's
        return merged, where
    value.setdefault("base_dir", str(config_path.parent))
    return value, where


def write_resolved(cfg: RunConfig, run: RunDir) -> Path:
    """Writes the config as run to <run>/config.yaml (atomically) and returns its path."""
    text = "# the resolved config of this run, as run by occi; later stages, ranks and SLURM jobs read it\n"
    return atomic_write_text(RunDir.of(run).config_file, text + yaml.safe_dump(to_plain(cfg), sort_keys=False, allow_unicode=True))


def default_run_dir(cfg: RunConfig) -> Path:
    """runs/<name> under the current directory (or $OCCI_RUNS)."""
    return Path(os.environ.get("OCCI_RUNS", "runs")) / cfg.name


def load_for_run(config: str, run_dir: str | Path | None = None, reconfigure: bool = False) -> tuple[RunConfig, RunDir]:
    """The config of a run, frozen: the first command of a run writes the resolved config into
    <run>/config.yaml; every later command, rank and SLURM job reads that file. A user YAML that no
    longer says the same is an error naming what changed, unless `reconfigure` asks to apply the
    changes to this run on purpose (they are then printed and appended to <run>/config-changes.log)."""
    cfg = load(config)
    run = RunDir(Path(run_dir) if run_dir else default_run_dir(cfg))
    if run.config_file.exists() and Path(cfg.source_file).resolve() == run.config_file.resolve():
        return cfg, run
    if run.config_file.exists():
        settings = changed_settings(_comparable(load(str(run.config_file))), _comparable(cfg))
        if not settings:
            return load(str(run.config_file)), run
        differences = _formatted(settings)
        if not reconfigure:
            shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
            raise OcciError(
                f"{cfg.source_file} differs from the config run {run.root} started with ({shown}); to go on as "
                f"started, pass {run.config_file}; to run the changed config, use a new run name or --run-dir; "
                "to apply the changes to this run on purpose, add --reconfigure")
        with runlock.hold(run, f"--reconfigure {cfg.source_file}"):  # not under a running training's feet
            _record_changes(run, cfg.source_file, differences)
            _rerun_affected_stages(run, [key for key, _, _ in settings])
            write_resolved(cfg, run)
    else:
        write_resolved(cfg, run)
    frozen = load(str(run.config_file))
    if _comparable(frozen) != _comparable(cfg):  # a field that does not survive YAML is a bug here
        raise OcciError(f"{run.config_file}: the resolved config does not read back the same: "
                        + "; ".join(changes(_comparable(cfg), _comparable(frozen))))
    return frozen, run


def _record_changes(run: RunDir, source: str, differences: list[str]) -> None:
    print(f"occi: --reconfigure: run {run.root} now follows {source}: " + "; ".join(differences), file=sys.stderr)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with open(run.config_changes, "a", encoding="utf-8") as log:
        log.writelines(f"{stamp}\t{source}\t{change}\n" for change in differences)


def _comparable(cfg: RunConfig) -> dict:
    plain = to_plain(cfg)
    plain.pop("source_file")
    return plain


def changed_settings(before: Any, after: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """The settings that differ between two plain config trees, as (dotted key, old, new)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in list(before) + [k for k in after if k not in before]:
            found += changed_settings(before.get(key), after.get(key), f"{where}.{key}" if where else str(key))
        return found
    return [] if before == after else [(where, before, after)]


def changes(before: Any, after: Any, where: str = "") -> list[str]:
    """The settings that differ between two plain config trees, as "key: old -> new"."""
    return _formatted(changed_settings(before, after, where))


def _formatted(settings: list[tuple[str, Any, Any]]) -> list[str]:
    return [f"{key}: {old!r} -> {new!r}" for key, old, new in settings]


def _rerun_affected_stages(run: RunDir, keys: list[str]) -> None:
    """Removes the completion markers of the stages the changed keys affect (the stage list says
    which stage reads what) and says which stages will run again."""
    again = invalidate(run, keys)
    if again:
        print(f"occi: --reconfigure: stages to run again: {', '.join(again)} (checkpoints are kept: training "
              f"resumes from the newest; delete {run.checkpoints} to train from scratch)", file=sys.stderr)
    else:
        print("occi: --reconfigure: no completed stage depends on the changed settings", file=sys.stderr)
