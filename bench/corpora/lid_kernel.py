"""The compiled language ID alone: CPU time of CompiledFastText.predict(text, 5) over the first
--shards shards of the benchmark corpus (newlines replaced, as the language filter sends them).

    PYTHONPATH=. .venv/bin/python bench/corpora/lid_kernel.py --corpus /tmp/occi-bench/corpus --shards 3 [--passes 1]

One process, one warm-up prediction, then --passes runs over the texts. Run it with PYTHONPATH
on a checkout of other code to time that code, alternating with this one (the machine's speed
drifts): the before/after check of a change to occi/corpora/fastlid.py's speed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from occi.corpora.fastlid import CompiledFastText
from occi.corpora.langid import default_model_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="make_corpus.py's shard folder")
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--passes", type=int, default=1)
    args = parser.parse_args(argv)
    texts = []
    for path in sorted(args.corpus.glob("part-*.jsonl"))[:args.shards]:
        with path.open(encoding="utf-8") as lines:
            texts += [json.loads(line)["text"].replace("\n", " ") for line in lines]
    print(f"{len(texts)} texts, {sum(map(len, texts)) / 1e6:.1f} M characters")
    compiled = CompiledFastText.from_file(default_model_path())
    compiled.predict("warm up", 5)
    for number in range(args.passes):
        start = time.process_time()
        for text in texts:
            compiled.predict(text, 5)
        spent = time.process_time() - start
        print(f"pass {number + 1}: {spent:.3f} s CPU ({1e6 * spent / len(texts):.1f} us per text); "
              f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
