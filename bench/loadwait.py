"""Waiting for a quiet machine before a benchmark round (`--wait-load X` of bench/run_all.py and
of the scripts that run alternating rounds themselves)."""
from __future__ import annotations

import os
import sys
import time

POLL_S = 15.0


def wait_for_load(below: float | None, most_s: float = 3600.0, poll_s: float = POLL_S) -> float:
    """Sleeps until the 1-minute load average is below `below` (no wait when None), at most
    `most_s` seconds (then goes on, saying so); returns the load average it starts with."""
    load = os.getloadavg()[0]
    if below is None:
        return load
    waited, said = 0.0, False
    while load >= below and waited < most_s:
        if not said:
            print(f"waiting for the 1-minute load average ({load:.2f}) to fall below {below}", file=sys.stderr, flush=True)
            said = True
        time.sleep(poll_s)
        waited += poll_s
        load = os.getloadavg()[0]
    if load >= below:
        print(f"still at load {load:.2f} after {most_s:.0f} s: going on (recorded with the round)", file=sys.stderr, flush=True)
    return load
