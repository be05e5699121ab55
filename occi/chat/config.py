"""Settings of `occi distill`: a teacher model, prompt files per language, sampling."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from occi import languages, ranges


@dataclass
class DistillPairsConfig:
    """Preference pairs from the distillation: for every prompt whose teacher answer is kept, the
    first of `samples` candidate answers that fails a check (wrong language, wrong number) is the
    rejected answer and the teacher's kept answer the chosen one."""
    model: str | None = None
    """Who writes the candidate answers: None samples the teacher itself; else a (weaker) model,
    a local folder or hub id like `teacher`, e.g. the student before SFT."""
    revision: str | None = None
    """Hub branch, tag or commit of `model` (ignored for folders)."""
    samples: int = 4
    """Candidate answers written per prompt; a prompt without a failing candidate gets no pair."""
    temperature: float = 1.0
    """Sampling temperature of the candidates (0: greedy, one candidate is enough then)."""
    top_p: float = 1.0
    """Nucleus sampling mass of the candidates (with temperature > 0)."""

    def __post_init__(self) -> None:
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise ValueError("model: expected a hub id or a model folder (or leave it out to sample the teacher)")
        ranges.check(self, {"samples": ranges.Range(1, 64), "temperature": ranges.at_least(0.0),
                            "top_p": ranges.Range(0.0, 1.0, low_open=True)})


@dataclass
class DistillConfig:
    teacher: str
    """The teacher: a transformers causal LM with a chat template, as a local folder (relative to
    the config's folder) or a Hugging Face hub id (fetched like `model.base`)."""
    prompts: dict[str, str | list[str]]
    """Per language code, the prompt file(s): JSONL (.jsonl, .jsonl.gz) or Parquet, one prompt per
    row as `prompt` (a string) or `messages` (a chat; a trailing assistant turn is dropped)."""
    revision: str | None = None
    """Hub branch, tag or commit of the teacher; None: the default branch (ignored for folders)."""
    system: str | None = None
    """A system message put before every prompt that has none."""
    max_new_tokens: int = 512
    """Most tokens the teacher writes per answer."""
    temperature: float = 0.0
    """Sampling temperature; 0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass (with temperature > 0)."""
    batch_size: int = 8
    """Prompts generated together; a batch is the unit written, skipped on resume and shared
    between SLURM array tasks."""
    backend: str = "transformers"
    """transformers (the tested default) or vllm (where it is installed; same output)."""
    device: str = "auto"
    """cpu, cuda, cuda:N (auto: cuda when available)."""
    dtype: str = "auto"
    """Teacher dtype (auto: bfloat16 on GPU, float32 on CPU)."""
    keep_reasoning: bool = True
    """Keep the teacher's reasoning (`<think>...</think>`, or the template's analysis channel) in the
    SFT rows, as the assistant turn's `reasoning` field (R1's distills train on it); False keeps
    the final answer only."""
    check_language: bool = True
    """Drop a row whose final answer (reasoning excluded) the run's language ID reads as another
    language than the prompt's (answers shorter than `min_langid_chars` are not judged)."""
    check_answers: bool = True
    """Where a prompt row carries `answer` (e.g. "42"), drop a row whose final answer's last number
    is not numerically equal to it (occi/chat/answer_checks.py writes the rule down)."""
    min_langid_chars: int = 20
    """Answers shorter than this are too short for language ID and pass the language check."""
    pairs: DistillPairsConfig | None = None
    """Also write DPO preference pairs to <run>/distill/pairs/<lang>.jsonl; None: no pairs."""
    max_prompts: int | None = None
    """At most this many prompts per language (the first ones); None: all."""
    base_dir: str = ""
    """Folder that relative paths are resolved against (set by the loader)."""

    def __post_init__(self) -> None:
        if not isinstance(self.teacher, str) or not self.teacher.strip():
            raise ValueError("teacher: expected a hub id or a model folder")
        if not self.prompts:
            raise ValueError("prompts: give at least one language: {de: prompts/de.jsonl}")
        for code in self.prompts:
            languages.get(code)
        if self.backend not in ("transformers", "vllm"):
            raise ValueError(f"backend: expected transformers or vllm, got {self.backend!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype: expected auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if not (self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise ValueError(f"device: expected auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        ranges.check(self, {"max_new_tokens": ranges.at_least(1), "temperature": ranges.at_least(0.0),
                            "top_p": ranges.Range(0.0, 1.0, low_open=True), "batch_size": ranges.at_least(1),
                            "max_prompts": ranges.at_least(1), "min_langid_chars": ranges.Range(0, 10000)})

    def prompt_files(self, code: str) -> list[Path]:
        """The prompt files of one language, resolved against the config's folder."""
        entry = self.prompts[code]
        names = [entry] if isinstance(entry, str) else list(entry)
        return [Path(self.base_dir, name) if not Path(name).is_absolute() else Path(name) for name in names]

    @property
    def sampling(self) -> dict:
        """The sampling parameters, as recorded in every row's provenance."""
        if self.temperature == 0:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens}
