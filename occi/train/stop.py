"""A request to checkpoint and stop, and how every rank learns of it at the same step.

Two ways in, one way out:
- a rank receives SIGTERM or SIGUSR1 itself (srun delivers SLURM's warning to every task);
- the local launcher (`occi train` starting torchrun) receives one and writes the request file
  `train/stop-request` at once, in its own handler. It does not pass the signal through
  torchrun: torchrun turns SIGTERM into an exception, signals the ranks only after its own
  shutdown steps, reports a failure, and kills ranks still saving after 30 s. On a busy machine
  that chain of three processes is slow enough for the ranks to train on to the last step. The
  file also keeps a request made while the ranks are still starting (before their handlers
  exist), which a signal would lose or turn into a kill.
At the end of every step the ranks agree (all-reduce MAX) whether any of them saw a signal, or
rank 0 saw the file; then all checkpoint the same step and stop.
"""
from __future__ import annotations

import signal
from pathlib import Path

import torch
import torch.distributed as dist

from occi.rundir import RunDir

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def request_file(run_dir: Path) -> Path:
    return RunDir.of(run_dir).stop_request


def request(run_dir: Path, signum: int) -> None:
    """Asks the ranks of this run to checkpoint and stop (safe to call from a signal handler)."""
    path = request_file(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{signal.Signals(signum).name}\n", encoding="utf-8")


def requested_by(run_dir: Path) -> str | None:
    """The signal name of a pending request, or None."""
    try:
        return request_file(run_dir).read_text(encoding="utf-8").strip() or "SIGTERM"
    except FileNotFoundError:
        return None


def clear(run_dir: Path) -> None:
    """Forgets a request (a new launch starts without one)."""
    request_file(run_dir).unlink(missing_ok=True)


class StopRequest:
    """One rank's view: its own signals, from the moment it is created, and the request file."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.signal: str | None = None
        for sig in SIGNALS:
            signal.signal(sig, self._remember)

    def _remember(self, signum, frame) -> None:
        self.signal = signal.Signals(signum).name

    def agreed(self, device: torch.device) -> bool:
        """True on every rank as soon as any rank received a signal or rank 0 sees the file."""
        if self.signal is None and dist.get_rank() == 0:
            self.signal = requested_by(self.run_dir)
        flag = torch.tensor([1.0 if self.signal else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    @property
    def name(self) -> str:
        return self.signal or "SIGTERM"
