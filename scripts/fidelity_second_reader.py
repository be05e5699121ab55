"""Reads occi's fidelity prompts (eval/data/fidelity/<code>.jsonl) with a second language
identifier, HPLT's heliport (occi's `corpora.langid.backend: heliport`), and prints per language how
many prompts it reads as their language, then every prompt it reads otherwise. The first reader,
the demo's lid.176 as the fidelity eval uses it, must read every prompt right (a test asserts it);
this is the independent check recorded in docs/stages/evaluation.md.

    python scripts/fidelity_second_reader.py            # Markdown table, then the disagreements
"""
from __future__ import annotations

from occi import languages
from occi.corpora.langid import LanguageIdentifier
from occi.eval.fidelity import KINDS, load_prompts


def main() -> None:
    reader = LanguageIdentifier(None, list(languages.LANGUAGES), backend="heliport")
    rows, disagreements, total, agreed_total = [], [], 0, 0
    for code in languages.LANGUAGES:
        prompts = load_prompts(code)
        verdicts = [(prompt, reader.predict(prompt.text)) for prompt in prompts]
        agreed = [prompt for prompt, (found, _, _) in verdicts if found == code]
        per_kind = {kind: sum(p.kind == kind for p in agreed) for kind in KINDS}
        rows.append(f"| {languages.get(code).name} ({code}) | {len(agreed)}/{len(prompts)} | "
                    + " | ".join(str(per_kind[kind]) for kind in KINDS) + " |")
        disagreements += [f"- {code} ({prompt.kind}): read as {found or label}: {prompt.text}"
                          for prompt, (found, _, label) in verdicts if found != code]
        total, agreed_total = total + len(prompts), agreed_total + len(agreed)
    print("| language | heliport agrees | everyday | technical | reasoning |\n|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nIn all: {agreed_total}/{total} ({agreed_total / total:.1%}).\n")
    print("\n".join(disagreements) or "No disagreements.")


if __name__ == "__main__":
    main()
