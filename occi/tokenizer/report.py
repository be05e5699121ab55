"""`occi tokenizer eval`: how well tokenizers serve each language, side by side.

Per language and tokenizer: fertility (tokens per whitespace word), characters and UTF-8 bytes
per token, the share of continued words (words that become more than one token, each word
encoded on its own), the byte-fallback rate (tokens that stand for raw bytes), and, for
parallel texts, parity: tokens relative to English for the same content. Outputs a Markdown
table, report.json and a bar chart of fertility.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from occi import languages
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, atomic_write_text
from occi.plots import pyplot, save_png
from occi.tokenizer.models import Tokenizer


@dataclass
class Measurement:
    lines: int
    words: int
    chars: int
    bytes: int
    tokens: int
    continued_words: int
    byte_tokens: int

    @property
    def fertility(self) -> float:
        return self.tokens / self.words if self.words else 0.0

    def as_dict(self, has_byte_fallback: bool) -> dict:
        tokens = max(1, self.tokens)
        return {**asdict(self), "fertility": round(self.fertility, 4),
                "chars_per_token": round(self.chars / tokens, 4), "bytes_per_token": round(self.bytes / tokens, 4),
                "continued_word_ratio": round(self.continued_words / max(1, self.words), 4),
                "byte_fallback_rate": round(self.byte_tokens / tokens, 6) if has_byte_fallback else None}


def measure(tokenizer: Tokenizer, text: str) -> Measurement:
    """The counts behind every metric, for one text (its non-empty lines)."""
    lines = [line for line in text.splitlines() if line.strip()]
    encoded = tokenizer.encode(lines) if lines else []
    words = [word for line in lines for word in line.split()]
    word_tokens = tokenizer.encode(words) if words else []
    return Measurement(
        lines=len(lines), words=len(words), chars=sum(map(len, lines)),
        bytes=sum(len(line.encode("utf-8")) for line in lines), tokens=sum(map(len, encoded)),
        continued_words=sum(1 for ids in word_tokens if len(ids) > 1),
        byte_tokens=sum(1 for ids in encoded for i in ids if tokenizer.is_byte_fallback(i)),
    )


def read_texts(specs: list[str]) -> dict[str, str]:
    """LANG=FILE arguments -> text per language, with one clear error per bad argument."""
    texts = {}
    for spec in specs:
        code, sep, file = spec.partition("=")
        if not sep or not file:
            raise OcciError(f"--text {spec!r}: expected LANG=FILE, e.g. de=held-out-de.txt")
        languages.get(code)
        try:
            texts[code] = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise OcciError(f"--text {spec}: cannot read {file}: {err}") from None
        if not texts[code].strip():
            raise OcciError(f"--text {spec}: {file} holds no text")
    return texts


def evaluate(tokenizers: list[Tokenizer], texts: dict[str, str], parallel: bool) -> dict:
    """The report: per tokenizer, per language, every metric (and parity for parallel texts)."""
    report = {"parallel": parallel, "languages": list(texts), "tokenizers": {}}
    for tokenizer in tokenizers:
        per_language = {code: measure(tokenizer, text).as_dict(tokenizer.has_byte_fallback) for code, text in texts.items()}
        if parallel and "en" in per_language:
            english = max(1, per_language["en"]["tokens"])
            for entry in per_language.values():
                entry["parity"] = round(entry["tokens"] / english, 4)
        report["tokenizers"][tokenizer.name] = {"vocab_size": tokenizer.vocab_size, "languages": per_language}
    return report


def compare(report: dict, new: str, old: str) -> dict:
    """Adds how tokenizer `new` does against `old` on the same text, per language: the token ratio
    (new tokens / old tokens: the parity of the two on identical content; below 1 means shorter
    sequences, so more text per training token and per context window) and the change in fertility;
    languages ordered by gain, largest first."""
    per_language = {}
    for code in report["languages"]:
        a, b = report["tokenizers"][new]["languages"][code], report["tokenizers"][old]["languages"][code]
        per_language[code] = {"token_ratio": round(a["tokens"] / max(1, b["tokens"]), 4),
                              "fertility_change": round(a["fertility"] - b["fertility"], 4)}
    order = sorted(per_language, key=lambda c: (per_language[c]["token_ratio"], c))
    report["comparison"] = {"new": new, "old": old, "languages": per_language, "most_gain": order}
    return report


def _comparison_markdown(comparison: dict) -> list[str]:
    new, old, per_language = comparison["new"], comparison["old"], comparison["languages"]
    lines = ["", f"{new} against {old} on the same text, the languages that gain most first (token ratio: "
             f"{new}'s tokens / {old}'s; below 1.00 the same text takes fewer tokens):", "",
             "| lang | token ratio | fertility change |", "|---|---|---|"]
    for code in comparison["most_gain"]:
        entry = per_language[code]
        lines.append(f"| {code} | {entry['token_ratio']:.3f} | {entry['fertility_change']:+.3f} |")
    return lines


def markdown(report: dict) -> str:
    names = list(report["tokenizers"])
    show_parity = report["parallel"] and "en" in report["languages"]
    header = ["lang"] + [f"fertility {n}" for n in names] + ([f"parity {n}" for n in names] if show_parity else [])
    header += [f"chars/token {names[0]}", f"continued {names[0]}", f"byte fallback {names[0]}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for code in report["languages"]:
        entries = [report["tokenizers"][n]["languages"][code] for n in names]
        row = [code] + [f"{e['fertility']:.2f}" for e in entries]
        if show_parity:
            row += [f"{e['parity']:.2f}" for e in entries]
        first = entries[0]
        fallback = first["byte_fallback_rate"]
        row += [f"{first['chars_per_token']:.2f}", f"{first['continued_word_ratio']:.1%}",
                "n/a" if fallback is None else f"{fallback:.2%}"]
        lines.append("| " + " | ".join(row) + " |")
    if "comparison" in report:
        lines += _comparison_markdown(report["comparison"])
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import numpy as np  # loads numpy: only when used

    plt = pyplot()
    names, codes = list(report["tokenizers"]), report["languages"]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(codes) * len(names) + 2), 4))
    for i, name in enumerate(names):
        values = [report["tokenizers"][name]["languages"][c]["fertility"] for c in codes]
        ax.bar(np.arange(len(codes)) + i * width, values, width, label=name)
    ax.axhline(2.0, color="grey", linestyle="--", linewidth=1, label="Occiglot's limit (2.0)")
    ax.set_xticks(np.arange(len(codes)) + width * (len(names) - 1) / 2, codes)
    ax.set_ylabel("fertility (tokens per word)")
    ax.set_title("tokenizer fertility per language")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def write(report: dict, folder: Path) -> None:
    """report.json, report.md and fertility.png in `folder`."""
    folder = Path(folder)
    atomic_write_json(folder / "report.json", report)
    atomic_write_text(folder / "report.md", markdown(report) + "\n")
    plot(report, folder / "fertility.png")
