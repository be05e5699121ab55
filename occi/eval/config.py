"""Settings of `occi eval`."""
from __future__ import annotations

from dataclasses import dataclass, field

from occi import ranges
from occi.eval.suites import SUITES
from occi.languages import BENCHMARKS
from occi.rundir import MODEL_NAMES


@dataclass
class EvalConfig:
    suites: list[str] = field(default_factory=lambda: ["offline"])
    """Suites run by `occi eval` and `occi run`: offline (no internet), eu-leaderboard, fidelity
    (answer-language fidelity, no internet) and/or ifeval (instruction following with verifiable
    constraints: occi's prompts offline, lm-eval's English and Spanish IFEval from the hub)."""
    batch_size: int = 8
    """lm-eval batch size, and how many fidelity prompts are answered at once."""
    device: str = "auto"
    """cpu, cuda, cuda:0, ... (auto: cuda when available)."""
    dtype: str = "auto"
    """Model dtype for evaluation (auto: bfloat16 on GPU, float32 on CPU)."""
    backend: str = "transformers"
    """Where generation runs (the fidelity suite, generative tasks such as gsm8k): transformers,
    or vllm (log-likelihoods stay on transformers; see docs/sft-and-distillation.md)."""
    limit: int | None = None
    """At most this many examples per task (quick checks); None evaluates everything."""
    num_fewshot: dict[str, int] = field(default_factory=dict)
    """Few-shot examples per family, overriding the leaderboard's (e.g. {arc: 0})."""
    heldout_max_docs: int = 50
    """Held-out documents per language scored for bits per byte."""
    fidelity_max_new_tokens: int = 64
    """Tokens of each answer generated for the fidelity suite."""
    ifeval_max_new_tokens: int = 1024
    """Tokens of each answer generated for the ifeval suite (lm-eval's max_gen_toks; IFEval's own
    tasks use 1280)."""
    fidelity_max_prompts: int | None = None
    """At most this many fidelity prompts per language, taken in turn from each kind (quick checks
    and demos; the interval widens); None answers all of them."""
    models: list[str] | None = None
    """The run's models `occi eval` (and `occi run`) evaluates, shown side by side per language on
    the leaderboard, in this order: base (the newest pretraining checkpoint, or the imported base:
    the model before post-training), sft, dpo (the newest checkpoint of that stage), merged (`occi
    merge`'s model), hf (the exported model). None: the exported model only (and a continued base)."""
    languages: list[str] | None = None
    """Languages evaluated, a subset of the run's (quicker checks); None evaluates all of them."""
    families: list[str] | None = None
    """Benchmark families of the eu-leaderboard suite evaluated (e.g. [arc_eu20, sib200]: quicker
    checks, fewer datasets to fetch); None evaluates every family each language has."""

    def __post_init__(self) -> None:
        for suite in self.suites:
            if suite not in SUITES:
                raise ValueError(f"suites: unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
        if self.backend not in ("transformers", "vllm"):
            raise ValueError(f"backend: expected transformers or vllm, got {self.backend!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype: expected auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if not (self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise ValueError(f"device: expected auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        ranges.check(self, {"batch_size": ranges.at_least(1), "limit": ranges.at_least(1),
                            "heldout_max_docs": ranges.at_least(1),
                            "fidelity_max_new_tokens": ranges.at_least(1), "fidelity_max_prompts": ranges.at_least(1),
                            "ifeval_max_new_tokens": ranges.between(1, 32768), "num_fewshot": ranges.at_least(0)})
        for name in self.models or []:
            if name not in MODEL_NAMES:
                raise ValueError(f"models: unknown model {name!r}; expected some of {', '.join(MODEL_NAMES)}")
        if self.models is not None and (not self.models or len(set(self.models)) != len(self.models)):
            raise ValueError(f"models: list each of {', '.join(MODEL_NAMES)} at most once, and at least one")
        for family in self.families or []:
            if family not in BENCHMARKS:
                raise ValueError(f"families: unknown benchmark family {family!r}; expected one of {', '.join(BENCHMARKS)}")
        for family, shots in self.num_fewshot.items():
            if family not in BENCHMARKS:
                raise ValueError(f"num_fewshot: unknown benchmark family {family!r}; expected one of {', '.join(BENCHMARKS)}")
            if not isinstance(shots, int) or shots < 0:
                raise ValueError(f"num_fewshot.{family}: expected a number of examples >= 0, got {shots!r}")
