"""Settings of `occi distill`: a teacher model, prompt files per language, sampling."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from occi import languages, ranges


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
                            "max_prompts": ranges.at_least(1)})

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
