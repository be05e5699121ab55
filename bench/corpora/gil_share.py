"""How much of occi's corpora worker runs inside the numba kernels (GIL released) and how much
in Python holding the GIL, in CPU time, one thread.

    PYTHONPATH=. .venv/bin/python bench/corpora/gil_share.py --corpus DIR --shards 7

Runs profile_worker.py's chain (the worker's filters, exact key and MinHash of the kept
documents, reading included) once to compile and load every kernel, then wraps each kernel that
Python calls (every numba dispatcher among the globals of the corpora modules) to add up the
thread's CPU time (`time.thread_time`) spent in its calls, and runs the chain again. The kernel
share includes the dispatcher's unboxing of the arguments (done holding the GIL) and the clock's
own system calls, so it is an upper bound of the GIL-free part; the rest of the CPU time is
Python holding the GIL: what a second worker thread waits for.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from numba.core.registry import CPUDispatcher

sys.path.insert(0, str(Path(__file__).resolve().parent))
import profile_worker  # noqa: E402

from occi.corpora import dedup, fastlid, kernels, normalize, quality  # noqa: E402


def wrap_kernels(spent: dict[str, float]) -> None:
    """Replaces each module-level numba dispatcher by a timing wrapper (the kernels are compiled
    already, so the compiled callers keep the dispatchers they were built with)."""
    clock = time.thread_time
    for module in (dedup, fastlid, kernels, normalize, quality):
        for name, value in list(vars(module).items()):
            if not isinstance(value, CPUDispatcher):
                continue
            key = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"
            spent[key] = 0.0

            def timed(*args, _kernel=value, _key=key):
                start = clock()
                result = _kernel(*args)
                spent[_key] += clock() - start
                return result

            setattr(module, name, timed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="make_corpus.py's shard folder")
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args(argv)
    cfg, folder = profile_worker.corpora_config(args.corpus, args.shards)
    try:
        profile_worker.run(cfg, folder, None)  # compiles or loads every kernel, warms the caches
        spent: dict[str, float] = {}
        wrap_kernels(spent)
        start = time.thread_time()
        documents, _, _ = profile_worker.run(cfg, folder, None)
        whole = time.thread_time() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    inside = sum(spent.values())
    print(f"{documents} documents: {whole:.2f} s CPU (this thread), {inside:.2f} s ({100 * inside / whole:.1f} %) "
          f"in kernels, {whole - inside:.2f} s ({100 * (whole - inside) / whole:.1f} %) in Python holding the GIL; "
          f"load average {os.getloadavg()[0]:.2f}")
    for key, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if seconds:
            print(f"  {key:<36}{seconds:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
