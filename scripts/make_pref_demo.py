"""Writes corpora/pref-demo/<code>.jsonl, the bundled preference pairs of the demo-chat run, from
the bundled chat set (corpora/chat-demo, written for occi by scripts/make_chat_demo.py): per
language, its first PAIRS_PER_LANGUAGE one-question conversations, the answer in the prompt's
language as chosen and the same answer in the next language of the set (whose answer reads
differently) as rejected. Pairs that
teach a small model to answer in the language it was asked in.

    python scripts/make_pref_demo.py      # rewrites the files; the output is deterministic
"""
from __future__ import annotations

import json
from pathlib import Path

PAIRS_PER_LANGUAGE = 8
ROOT = Path(__file__).resolve().parents[1] / "corpora"


def single_exchanges(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [(row["messages"][0]["content"], row["messages"][1]["content"]) for row in rows
            if [m["role"] for m in row["messages"]] == ["user", "assistant"]]


def pairs() -> dict[str, list[dict]]:
    codes = sorted(path.stem for path in (ROOT / "chat-demo").glob("*.jsonl"))
    exchanges = {code: single_exchanges(ROOT / "chat-demo" / f"{code}.jsonl") for code in codes}
    out = {}
    for number, code in enumerate(codes):
        out[code] = []
        for index, (prompt, answer) in enumerate(exchanges[code][:PAIRS_PER_LANGUAGE]):
            # the next language whose answer is written differently (sk's and sl's sums read alike)
            other = next(other for other in codes[number + 1:] + codes[:number] if exchanges[other][index][1] != answer)
            out[code].append({"prompt": prompt, "chosen": answer, "rejected": exchanges[other][index][1],
                              "language": code, "rejected_language": other,
                              "provenance": {"author": "occi", "script": "scripts/make_pref_demo.py"}})
    return out


def main() -> None:
    folder = ROOT / "pref-demo"
    folder.mkdir(exist_ok=True)
    for code, rows in pairs().items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (folder / f"{code}.jsonl").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
