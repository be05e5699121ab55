"""The run directory: one property per artifact, so no other module spells a run path.

Every stage reads the previous stages' outputs and writes its own folder here; a folder is
complete when its `_DONE` marker exists (occi/fsutil.py). Paths stored inside run files (the
blend's dataset prefixes) are relative to the run directory, so a run can be moved or copied to
another machine and go on there.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from occi.errors import OcciError
from occi.fsutil import is_done
from occi.pipeline import stage_named

ROLES = {"base": "train", "sft": "sft", "dpo": "dpo"}
"""eval.models' names of the stage models (<run>/stage_models/<name>) and their stages: `base` is the model
before post-training (the newest pretraining checkpoint, or the imported base)."""
MODEL_NAMES = (*ROLES, "merged", "hf")
"""What eval.models may list: the stage models, the merged model (<run>/merged) and the exported one (<run>/hf)."""


@dataclass(frozen=True)
class RunDir:
    root: Path
    """The run directory (default runs/<name>)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self) -> str:  # a RunDir goes wherever a path to the run directory does
        return str(self.root)

    @classmethod
    def of(cls, run: RunDir | Path | str) -> RunDir:
        """`run` itself, or the run directory at that path."""
        return run if isinstance(run, RunDir) else cls(Path(run))

    # ------------------------------------------------------------ the frozen config
    @property
    def config_file(self) -> Path:
        """The resolved config, frozen when the run starts; every later command reads it."""
        return self.root / "config.yaml"

    @property
    def config_changes(self) -> Path:
        """Settings changed on purpose during the run (--reconfigure), one line each."""
        return self.root / "config-changes.log"

    @property
    def lock(self) -> Path:
        """Held (flock) by the process working on the run; it says who: pid, host, command."""
        return self.root / "lock"

    # ------------------------------------------------------------ pre-flight (commands, not stages)
    @property
    def doctor_report(self) -> Path:
        """`occi doctor`'s checks of the node it ran on, with what to do about each failure."""
        return self.root / "doctor.json"

    @property
    def fetch_manifest(self) -> Path:
        """`occi fetch`'s manifest: every hub item the run reads, its revision, size and local files."""
        return self.root / "fetch.json"

    @property
    def plan(self) -> Path:
        """`occi plan`'s estimate of GPU-hours, wall time, energy and cost before submission."""
        return self.root / "plan.json"

    @property
    def plan_memory_png(self) -> Path:
        """`occi plan`'s predicted memory per GPU, drawn."""
        return self.root / "plan-memory.png"

    @property
    def provenance(self) -> Path:
        """Which occi (version, git commit) ran each stage, one JSON line per stage run."""
        return self.root / "provenance.jsonl"

    @property
    def energy(self) -> Path:
        """Measured energy and device-hours, one JSON line per job (training, evaluation)."""
        return self.root / "energy.jsonl"

    def scratch(self, prefix: str) -> Path:
        """A new private folder inside the run directory (on its file system), for a command's
        throw-away work; the caller removes it."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=self.root))

    # ------------------------------------------------------------ stage folders
    @property
    def corpora(self) -> Path:
        return self.root / "corpora"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def base(self) -> Path:
        """The imported base model's config, tokenizer files and source.json (`occi import`)."""
        return self.root / "base"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def hf(self) -> Path:
        return self.root / "hf"

    @property
    def gguf(self) -> Path:
        """llama.cpp / Ollama files made from hf/ (`occi export --format gguf`), with manifest.json."""
        return self.root / "gguf"

    @property
    def gguf_manifest(self) -> Path:
        return self.gguf / "manifest.json"

    @property
    def distill(self) -> Path:
        """A teacher's answers as SFT rows (`occi distill`): <lang>.jsonl, stats.json, parts/."""
        return self.root / "distill"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def slurm(self) -> Path:
        return self.root / "slurm"

    # ------------------------------------------------------------ corpora
    @property
    def corpora_stats(self) -> Path:
        return self.corpora / "stats.json"

    @property
    def corpora_domains(self) -> Path:
        """Documents and bytes per registered domain, per source and language (corpora/domains.py)."""
        return self.corpora / "domains.json"

    @property
    def corpora_domains_plot(self) -> Path:
        """The largest domains as a bar chart."""
        return self.corpora / "domains.png"

    @property
    def corpora_work(self) -> Path:
        """The corpora stage's work between its phases (filtered shards, dedup keys, pairs, drop
        lists, written parts); removed when the stage completes."""
        return self.corpora / "_work"

    def corpus(self, code: str) -> Path:
        """One language's Parquet parts."""
        return self.corpora / code

    # ------------------------------------------------------------ tokenizer
    @property
    def tokenizer_model(self) -> Path:
        return self.tokenizer / "tokenizer.model"

    @property
    def tokenizer_extension(self) -> Path:
        """The pieces `tokenizer: {extend: ...}` added to the base's tokenizer."""
        return self.tokenizer / "extension.json"

    @property
    def tokenizer_report(self) -> Path:
        return self.tokenizer / "report.json"

    # ------------------------------------------------------------ data
    @property
    def blend_file(self) -> Path:
        return self.data / "blend.json"

    def dataset_prefix(self, code: str, split: str = "train") -> Path:
        """data/<code>_text_document (train) or data/<code>_valid_text_document (held out)."""
        return self.data / (f"{code}_text_document" if split == "train" else f"{code}_valid_text_document")

    def relative(self, path: Path) -> str:
        """`path` as stored in run files: relative to the run directory."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def resolve(self, stored: str) -> str:
        """A path stored in a run file, as an absolute path at the run's current location."""
        path = Path(stored)
        return str(path if path.is_absolute() else (self.root / path).resolve())

    def read_blend(self) -> dict:
        """blend.json with its dataset prefixes and tokenizer resolved to absolute paths."""
        self.require("data")
        blend = json.loads(self.blend_file.read_text(encoding="utf-8"))
        blend["tokenizer"] = self.resolve(blend["tokenizer"])
        for entry in blend["languages"].values():
            entry["prefix"] = self.resolve(entry["prefix"])
            entry["valid_prefix"] = self.resolve(entry["valid_prefix"])
        for key in ("megatron_data_path", "megatron_valid_data_path"):  # "weight prefix ..." / "prefix ..."
            words = blend.get(key, "").split()
            blend[key] = " ".join(self.resolve(w) if w.startswith("data/") else w for w in words)
        return blend

    def read_json(self, path: Path) -> dict | None:
        """A run file's JSON, or None when it is missing or unreadable (for reports)."""
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------ train
    @property
    def train_summary(self) -> Path:
        return self.train / "summary.json"

    @property
    def expert_load_plot(self) -> Path:
        """Mixture-of-experts runs: the share of tokens each expert got, per layer."""
        return self.train / "expert_load.png"

    @property
    def stop_request(self) -> Path:
        """Written by the launcher on SIGUSR1/SIGTERM; the ranks checkpoint and stop when they see it."""
        return self.train / "stop-request"

    @property
    def stability_events(self) -> Path:
        """The stability guard's events (bad steps, the batches they skipped), rewritten by rank 0."""
        return self.train / "stability.json"

    @property
    def train_error(self) -> Path:
        """Written by rank 0 when a rank stops on a user error; the launcher reports it."""
        return self.train / "error.txt"

    # ------------------------------------------------------------ distill
    def distill_rows(self, code: str) -> Path:
        """One language's distilled SFT rows (JSONL), the file an SFT source lists."""
        return self.distill / f"{code}.jsonl"

    def distill_pairs(self, code: str) -> Path:
        """One language's preference pairs from the distillation (JSONL in occi/dpo/data.py's format)."""
        return self.distill / "pairs" / f"{code}.jsonl"

    def distill_part(self, code: str, batch: int) -> Path:
        """One generated batch, written atomically; its existence means the batch is done."""
        return self.distill / "parts" / code / f"{batch:06d}.jsonl"

    @property
    def distill_stats(self) -> Path:
        return self.distill / "stats.json"

    # ------------------------------------------------------------ sft
    @property
    def sft(self) -> Path:
        """Supervised fine-tuning (`occi sft`): its data, tokenizer, checkpoints and logs."""
        return self.root / "sft"

    @property
    def sft_data(self) -> Path:
        """The checked and tokenized chat data: conversations.npz, stats.json, kept_dropped.png."""
        return self.sft / "data"

    @property
    def sft_stats(self) -> Path:
        return self.sft_data / "stats.json"

    @property
    def sft_tokenizer(self) -> Path:
        """The run's tokenizer with the chat template SFT trained with (exported with the model)."""
        return self.sft / "tokenizer"

    @property
    def sft_checkpoints(self) -> Path:
        """SFT checkpoints, laid out like checkpoints/ (iter_*/, latest)."""
        return self.sft / "checkpoints"

    @property
    def sft_summary(self) -> Path:
        return self.sft / "summary.json"

    @property
    def sft_error(self) -> Path:
        """Written by rank 0 when an SFT rank stops on a user error; the launcher reports it."""
        return self.sft / "error.txt"

    # ------------------------------------------------------------ dpo
    @property
    def dpo(self) -> Path:
        """Preference tuning (`occi dpo`): its pairs, tokenizer, reference log-probabilities, checkpoints and logs."""
        return self.root / "dpo"

    @property
    def dpo_data(self) -> Path:
        """The checked and tokenized preference pairs: pairs.npz, stats.json, kept_dropped.png."""
        return self.dpo / "data"

    @property
    def dpo_stats(self) -> Path:
        return self.dpo_data / "stats.json"

    @property
    def dpo_tokenizer(self) -> Path:
        """The tokenizer with the chat template DPO trained with (exported with the model)."""
        return self.dpo / "tokenizer"

    @property
    def dpo_reference(self) -> Path:
        """The reference model's log-probabilities of every pair's chosen and rejected answer, with
        the digest of the pairs and the starting checkpoint they were computed for."""
        return self.dpo / "reference_logps.npz"

    @property
    def dpo_checkpoints(self) -> Path:
        """DPO checkpoints, laid out like checkpoints/ (iter_*/, latest)."""
        return self.dpo / "checkpoints"

    @property
    def dpo_summary(self) -> Path:
        return self.dpo / "summary.json"

    @property
    def dpo_error(self) -> Path:
        """Written by rank 0 when a DPO rank stops on a user error; the launcher reports it."""
        return self.dpo / "error.txt"

    # ------------------------------------------------------------ merge
    @property
    def merged(self) -> Path:
        """`occi merge`'s model: transformers files and occi_merge.json (its parents and weights)."""
        return self.root / "merged"

    @property
    def stage_models(self) -> Path:
        """Stage models (the newest checkpoint of train, sft, dpo) and single checkpoints, each
        exported as a transformers folder for `occi merge` and `occi eval` (eval.models)."""
        return self.root / "stage_models"

    def stage_model(self, name: str) -> Path:
        """stage_models/<name>: a stage model (base, sft, dpo) or a checkpoint (sft-iter_0000040)."""
        return self.stage_models / name

    # ------------------------------------------------------------ eval
    @property
    def eval_models(self) -> Path:
        """Which model each eval label stands for."""
        return self.eval / "models.json"

    def eval_table(self, label: str, suffix: str = "json") -> Path:
        """A model's per-language results table, eval/table-<label>.{json,md}."""
        return self.eval / f"table-{label}.{suffix}"

    def eval_cell(self, suite: str, label: str, language: str, family: str) -> Path:
        """One cell's lm-eval results: eval/<suite>/<model>/<lang>/<family>."""
        return self.eval / suite / label / language / family

    # ------------------------------------------------------------ report
    @property
    def card(self) -> Path:
        return self.report / "MODEL_CARD.md"

    @property
    def loss_curve(self) -> Path:
        return self.report / "loss_curve.png"

    # ------------------------------------------------------------ completion
    def stage_folder(self, stage: str) -> Path:
        """The output folder of a stage of the stage list (occi/pipeline.py)."""
        return self.named(stage_named(stage).folder)

    def named(self, name: str) -> Path:
        """The artifact a stage declaration names: a property of this class, or a path under the run."""
        return getattr(self, name) if isinstance(getattr(type(self), name, None), property) else self.root / name

    def is_done(self, stage: str) -> bool:
        """True when the stage's folder holds its completion marker."""
        return is_done(self.stage_folder(stage))

    def require(self, stage: str) -> None:
        """Raises the one "run `occi X` first" error when `stage` has not completed."""
        if not self.is_done(stage):
            entry = stage_named(stage)
            raise OcciError(f"{self.stage_folder(stage)}: the {stage} stage has not completed; "
                            f"run `occi {' '.join(entry.command)}` first")
