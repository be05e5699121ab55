"""The model card's GGUF section: the files of <run>/gguf/ with their sizes, and what each
quantization costs in quality per language (bits per byte beside the transformers model's).

A GGUF file's results are found through <run>/eval/models.json (evaluation label -> model path),
which `occi eval --model FILE.gguf` fills in.
"""
from __future__ import annotations

from pathlib import Path

from occi.eval.runner import own_table, registered_models
from occi.rundir import RunDir



def _bpb(table: dict | None) -> dict[str, float]:
    if not table:
        return {}
    return {c["language"]: c["value"] for c in table["cells"] if c["family"] == "bpb" and c["state"] == "done"}


def _mc(table: dict | None) -> dict[str, float]:
    if not table:
        return {}
    return {c["language"]: c["value"] for c in table["cells"] if c["family"] == "mc" and c["state"] == "done"}


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def gguf_results(run_dir: Path) -> dict[str, dict | None]:
    """GGUF file name -> its evaluation table (None when not evaluated)."""
    run = RunDir.of(run_dir)
    by_source = {source: label for label, source in registered_models(run).items()}
    tables = {}
    for name in (run.read_json(run.gguf_manifest) or {}):
        label = by_source.get(str((run.gguf / name).resolve()))
        tables[name] = run.read_json(run.eval_table(label)) if label else None
    return tables


def gguf_section(cfg, run_dir: Path, codes: list[str]) -> str | None:
    """Markdown for the card, or None when the run has no GGUF files."""
    run = RunDir.of(run_dir)
    manifest = run.read_json(run.gguf_manifest) or {}
    if not manifest:
        return None
    tables = gguf_results(run)
    reference = own_table(run)
    base_bpb, base_mc = _bpb(reference), _mc(reference)
    lines = ["Files for llama.cpp and Ollama, written by `occi export --format gguf` (each with an Ollama "
             "Modelfile beside it). Quality: bits per byte on the run's held-out text (lower is better), "
             "evaluated by `occi eval --model FILE.gguf` with llama.cpp, beside the transformers model.", "",
             "| file | type | size | mean bits per byte | vs transformers | occi MC accuracy |", "|---|---|---|---|---|---|"]
    base_mean = _mean(base_bpb.values())
    hf_config = run.read_json(run.hf / "config.json") or {}
    lines.append(f"| transformers (`hf/`) | {hf_config.get('dtype') or hf_config.get('torch_dtype') or 'float32'} "
                 f"| {_folder_size(run.hf) / 1e6:,.1f} MB | {_fmt(base_mean)} | – | {_fmt(_mean(base_mc.values()))} |")
    for name, entry in sorted(manifest.items(), key=lambda kv: -kv[1]["bytes"]):
        bpb, mc = _bpb(tables.get(name)), _mc(tables.get(name))
        shared = [c for c in bpb if c in base_bpb]
        delta = _pct(_mean(bpb[c] for c in shared), _mean(base_bpb[c] for c in shared)) if shared else "–"
        lines.append(f"| `{name}` | {entry['quant']} | {entry['bytes'] / 1e6:,.1f} MB | {_fmt(_mean(bpb.values()))} "
                     f"| {delta} | {_fmt(_mean(mc.values()))} |")
    evaluated = [name for name in sorted(manifest, key=lambda n: -manifest[n]["bytes"]) if _bpb(tables.get(name))]
    if evaluated and base_bpb:
        lines += ["", "Cost of each quantization per language: bits per byte, and its change from the transformers model.", "",
                  "| language | transformers | " + " | ".join(manifest[n]["quant"] for n in evaluated) + " |",
                  "|---|---|" + "---|" * len(evaluated)]
        for code in codes:
            if code not in base_bpb:
                continue
            cells = []
            for name in evaluated:
                value = _bpb(tables[name]).get(code)
                cells.append("–" if value is None else f"{value:.4f} ({_pct(value, base_bpb[code])})")
            lines.append(f"| {code} | {base_bpb[code]:.4f} | " + " | ".join(cells) + " |")
    elif not evaluated:
        lines += ["", "_No GGUF file has been evaluated yet: `occi eval CONFIG --model <run>/gguf/FILE.gguf`._"]
    first = sorted(manifest)[0]
    lines += ["", "```bash", f"llama-cli -m {first} -p \"...\" -n 64 --temp 0          # llama.cpp",
              f"ollama create {Path(first).stem} -f {Path(first).stem}.Modelfile && ollama run {Path(first).stem}",
              "```"]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _pct(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "–"
    change = 100 * (value - base) / base
    return "±0.00 %" if abs(change) < 0.005 else f"{change:+.2f} %"


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0


def card_section(cfg, run: RunDir, out_dir: Path) -> str:
    """The export stage's section: how to run the GGUF files locally ("" without GGUF files)."""
    text = gguf_section(cfg, run, cfg.languages)
    return "## Run it locally (GGUF: llama.cpp, Ollama)\n\n" + text if text else ""
