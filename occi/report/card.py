"""`occi card`: the model card of a run, following Hugging Face's conventions.

Every number on the card is read from the run's files (corpora/stats.json, tokenizer/report.json,
data/blend.json, train/log.jsonl, the evaluation results); a section whose files are missing says
so instead of inventing anything. The YAML front matter (language, license, library_name,
pipeline_tag, tags, datasets, model-index) is produced with huggingface_hub's own ModelCardData.
"""
from __future__ import annotations

from pathlib import Path

from occi import languages
from occi.basemodel import is_base_run, vocab_size
from occi.config import RunConfig
from occi.errors import OcciError
from occi.fsutil import atomic_write_text, mark_done
from occi.pipeline import StageResult, stages_of
from occi.report import content_summary, leaderboard, publish
from occi.report.base_section import front_matter
from occi.report.card_model import MISSING, model_of
from occi.report.cost_section import cost_section
from occi.report.eval_section import evaluation_section
from occi.report.lineage_section import lineage_section, trained_languages
from occi.report.markdown_text import markdown_table
from occi.report.moe_section import moe_section
from occi.report.sft_section import adjust_front_matter, is_chat
from occi.rundir import RunDir
from occi.sharding import Share
from occi.train.config import flops_per_token

CARD_PARTS = ("model", "data", "training", "results", "use")
"""The parts of the card the stages' sections go to (Stage.card_part), in the card's order: `model` before the
model details, `data`, `training` and `results` after the intended uses, `use` before the compute; the card's
own sections (model details, intended uses, compute, cost, the training-content summary, lineage, usage,
citation) belong to no one stage."""


# ------------------------------------------------------------------ sections

def _details(cfg: RunConfig, run: RunDir, blend: dict | None) -> str:
    m = model_of(cfg, run)
    if m is None:
        return MISSING.format(what="the model shape", path="model: in the config, or base/config.json")
    vocab = blend["vocab_size"] if blend else None
    hf_config = run.read_json(run.hf / "config.json") or {}
    padded = hf_config.get("vocab_size")
    architecture = ("Llama (decoder-only transformer): RMSNorm, SwiGLU, rotary embeddings, grouped-query attention, "
                    "no biases, untied embeddings")
    if m.vocab_size is not None:
        architecture = f"{(hf_config.get('architectures') or [m.description])[0]}, as the base model (see Base model)"
    rows = [("Architecture", architecture),
            ("Layers", m.num_layers), ("Hidden size", m.hidden_size), ("FFN hidden size", m.ffn_hidden_size),
            ("Attention heads / key-value heads", f"{m.num_attention_heads} / {m.num_query_groups}"),
            ("Sequence length", m.seq_length), ("RoPE base", m.rotary_base)]
    if vocab:
        rows.append(("Vocabulary", f"{vocab:,} (embedding padded to {padded:,})" if padded else f"{vocab:,}"))
        rows.append(("Parameters", f"{m.parameters(padded or vocab):,}"))
    rows.append(("Languages", ", ".join(f"{languages.get(c).name} ({c})" for c in cfg.languages)))
    return markdown_table(["", ""], rows)


def _padded_vocab(run: RunDir, blend: dict | None) -> int | None:
    return (run.read_json(run.hf / "config.json") or {}).get("vocab_size") or (blend or {}).get("vocab_size")


def _compute(cfg: RunConfig, run: RunDir, blend: dict | None) -> str:
    from occi.train.logs import read_log  # loads torch: only when used

    train = [r for r in read_log(run.train) if r.get("kind") == "train"]
    summary = run.read_json(run.train_summary) or {}
    if not train or not blend:
        return MISSING.format(what="the training log", path="train/log.jsonl")
    steps = {r["step"]: r for r in train}
    seconds = sum(r["seconds"] for r in steps.values())
    model = model_of(cfg, run)
    tokens = len(steps) * cfg.train.global_batch_size * model.seq_length
    flops = flops_per_token(model, vocab_size(model, run)) * tokens
    hardware = cfg.card.hardware or summary.get("hardware", "not recorded (train/summary.json)")
    return markdown_table(["", ""], [("Hardware", hardware), ("Training time (sum of step times)", f"{seconds / 3600:.4f} h"),
                             ("Training compute (6N + attention per token" + (", N active" if model.is_moe else "") + ")",
                              f"{flops:.3e} FLOPs")])


def _content_summary(cfg: RunConfig, run: RunDir, out_dir: Path) -> str:
    path, summary = content_summary.write(cfg, run, out_dir)
    status = ("complete" if summary["status"] == "complete" else
              f"incomplete ({len(summary['todo'])} to-do line(s): fill the config's `provider:` block)")
    return (f"The public summary of the content used to train this model (Article 53(1)(d) of the EU AI Act), on the "
            f"AI Office's template, is [{path.name}]({path.name}) ([JSON]({path.stem}.json)), written from this run's "
            f"records. Status: **{status}**.")


def _usage(cfg: RunConfig, repo_id: str | None) -> str:
    where = repo_id or "path/to/hf"
    sample = {"de": "Die Hauptstadt von Frankreich ist", "fr": "La capitale de l'Allemagne est"}
    code = next((c for c in cfg.languages if c in sample), None)
    prompt = sample.get(code, "The capital of France is")
    return "\n".join([
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
        f'model = AutoModelForCausalLM.from_pretrained("{where}")',
        f'inputs = tokenizer("{prompt}", return_tensors="pt")',
        "output = model.generate(**inputs, max_new_tokens=20, do_sample=False)",
        "print(tokenizer.decode(output[0], skip_special_tokens=True))",
        "```",
    ])


def _citation(cfg: RunConfig) -> str:
    key = cfg.model_name.replace("-", "_")
    return "\n".join(["```bibtex", f"@misc{{{key},", f"  title  = {{{cfg.model_name}: a language model for the languages of the EU, trained with occi}},",
                      "  note   = {Trained with the occi pipeline (corpora, tokenizer, megatron-core, lm-eval)},", "}", "```"])


# ------------------------------------------------------------------ the card

def card_text(cfg: RunConfig, run: RunDir, out_dir: Path, repo_id: str | None = None) -> str:
    from huggingface_hub import ModelCardData  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

    _, eval_results = evaluation_section(run)
    blend = run.read_json(run.blend_file)  # the counts and vocabulary the model details and compute show
    hub_sources = [s.dataset for s in cfg.corpora.sources if s.kind == "hub" and s.dataset and "/" in s.dataset]
    parts = stage_sections(cfg, run, out_dir)

    continued = is_base_run(cfg)
    data = ModelCardData(
        **(front_matter(cfg) if continued else {}),
        language=list(cfg.languages), license=cfg.card.license, library_name="transformers",
        pipeline_tag="text-generation", tags=["occi", "megatron-core", "multilingual", "european-languages"],
        datasets=cfg.card.datasets or hub_sources or None,
        model_name=cfg.model_name if eval_results else None, eval_results=eval_results or None,
    )
    adjust_front_matter(data, cfg, run)
    sections = [
        f"# {cfg.model_name}",
        f"A {'chat' if is_chat(run) else 'base language'} model for {len(cfg.languages)} languages"
        + (" of the European Union, " if all(languages.get(c).eu_official for c in cfg.languages) else
           f" ({sum(languages.get(c).eu_official for c in cfg.languages)} of them official EU languages), ")
        + (f"continued from `{cfg.model.base}`" if continued else "trained from scratch")
        + f" with occi (megatron-core) in the run `{cfg.name}`. This card is generated by `occi card` "
        "from the run's files; do not edit it by hand.",
        *parts["model"],
        "## Model details", _details(cfg, run, blend),
        *moe_section(model_of(cfg, run), run, _padded_vocab(run, blend), out_dir),
        "## Intended uses and limitations", f"{cfg.card.intended_use}\n\n{cfg.card.limitations}",
        *parts["data"], *parts["training"], *parts["results"], *parts["use"],
        "## Compute", _compute(cfg, run, blend),
        "## Cost and energy", cost_section(cfg, run),
        "## EU AI Act: summary of training content", _content_summary(cfg, run, out_dir),
        "## Lineage", trained_languages(cfg) + "\n\n" + lineage_section(cfg, run),
        "## How to use", _usage(cfg, repo_id),
        "## Citation", _citation(cfg),
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"


def stage_sections(cfg: RunConfig, run: RunDir, out_dir: Path) -> dict[str, list[str]]:
    """The sections the run's stages declare (occi/pipeline.py: Stage.card_section), per card part, in stage order."""
    parts: dict[str, list[str]] = {part: [] for part in CARD_PARTS}
    for stage in stages_of(cfg):
        text = stage.section(cfg, run, out_dir)
        if text:
            parts[stage.card_part].append(text)
    return parts


def write_card(cfg: RunConfig, run: RunDir, out: Path | None = None, repo_id: str | None = None) -> Path:
    """Writes the card (default <run>/report/MODEL_CARD.md) and its loss-curve picture beside it."""
    out = Path(out) if out else run.card
    return atomic_write_text(out, card_text(cfg, run, out.parent, repo_id))


def write_leaderboard(run: RunDir, cfg: RunConfig | None = None) -> bool:
    """The leaderboard of every model evaluated in this run, as report/leaderboard.{md,csv,json,html,png}
    (with eval.models, those side by side per language); False when the run has no evaluation results yet."""
    if not run.eval.is_dir():
        return False
    board = leaderboard.read([str(run.eval)])
    if not board.cells:
        return False
    models = cfg.eval.models if cfg is not None else None
    compare = [cfg.model_name if name == "hf" else name for name in models] if models else None
    leaderboard.write(leaderboard.summarize(board, compare=compare), run.report)
    return True


def run(cfg: RunConfig, run: RunDir, share: Share = Share(), out: str | None = None, push: str | None = None,
        dry_run: bool = False, allow_incomplete: bool = False) -> StageResult:
    """The report stage (`occi card`): the run's leaderboard, loss curve and model card in <run>/report
    (or only the card and its loss curve at `out`, leaving the run's report as it is), and the model
    published to `push` if given (not with a training-content summary that has to-do lines, unless
    `allow_incomplete`)."""
    lines = []
    if out:
        card = write_card(cfg, run, Path(out), repo_id=push)
    else:
        if write_leaderboard(run, cfg):
            lines.append(f"leaderboard: {run.report}/leaderboard.{{md,csv,json,html,png}}")
        card = write_card(cfg, run, repo_id=push)
        atomic_write_text(run.report / "cost.md", "# Cost and energy\n\n" + cost_section(cfg, run) + "\n")
        mark_done(run.report)
    lines.append(f"card: {card}")
    summary = content_summary.read_status(card.parent) or {}
    lines.append(f"training-content summary: {card.parent / 'training-content-summary.md'} ({summary.get('status')})")
    if push and summary.get("todo") and not allow_incomplete:
        raise OcciError(f"{card.parent / 'training-content-summary.md'}: {len(summary['todo'])} to-do line(s), the first "
                        f"{summary['todo'][0]}; fill the config's `provider:` block (then `occi card` again with "
                        "--reconfigure) or publish it as it is with --allow-incomplete")
    if push:
        files = publish.upload_plan(run, card)
        lines.append(publish.dry_run(push, files) if dry_run else f"card: uploaded to {publish.push(push, files)}")
    return StageResult("\n".join(lines))
