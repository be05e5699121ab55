"""occi's fixed cost in the corpora stage, part by part, in CPU time of a fresh process.

    PYTHONPATH=. .venv/bin/python bench/corpora/startup.py [--rounds 3]

Each round is a new Python process that does, in order, what `occi corpora build` does before
and around its documents: import the command line and the stage, load the language-ID model
(the compiled lid.176), load every numba kernel of the worker's chain from its cache (one
document through the filters, language ID and MinHash), and import matplotlib for the plots of
the finish phase. Prints the process CPU time (user + system, `time.process_time`) of each part:
CPU time, because wall time on a shared machine says more about the neighbours. The numba
caches must be warm (run the stage once first), as they are in the benchmark's rounds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ROUND = """
import json, time
clock = time.process_time
parts = {}
start = clock()
import occi.cli
from occi import languages
from occi.corpora import build
from occi.corpora.config import CorporaConfig, SourceConfig
parts["imports (occi.cli, occi.corpora.build)"] = clock() - start
start = clock()
cfg = CorporaConfig(sources=[SourceConfig(name="s", kind="jsonl", path="none.jsonl")])
codes = list(languages.LANGUAGES)
identifier = build.LanguageIdentifier.from_config(cfg.langid, codes)
parts["language-ID model (compiled lid.176)"] = clock() - start
start = clock()
processor = build.ShardProcessor(build.Job(cfg, codes, None, None), identifier)
doc = build.Document(text="Der Zug f\\u00e4hrt um acht Uhr ab, und wir warten am Gleis.\\n" * 3, id="1", source="s")
processor.decide([doc])
build.MinHasher(cfg.dedup).band_hashes(doc.text)
build.exact_key(doc.text)
parts["numba kernels from the cache (one document)"] = clock() - start
start = clock()
from occi.plots import pyplot
pyplot()
parts["matplotlib (the finish phase's plots)"] = clock() - start
print(json.dumps(parts))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rounds = []
    for _ in range(args.rounds):
        out = subprocess.run([sys.executable, "-c", ROUND], cwd=ROOT, check=True, capture_output=True, text=True)
        rounds.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for part in rounds[0]:
        print(f"  {part:45s} " + " / ".join(f"{r[part]:.2f}" for r in rounds) + " s")
    print(f"  {'together':45s} " + " / ".join(f"{sum(r.values()):.2f}" for r in rounds) + " s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
