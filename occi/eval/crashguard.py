"""GGUF evaluation in a child process, so that a crash of llama.cpp becomes one line.

llama.cpp runs inside the evaluating process (llama-cpp-python), so a fault in its C code
(SIGSEGV, or SIGABRT from a failed GGML_ASSERT) kills that process outright: no Python exception,
no message, exit status 139. Nothing inside the dying process can turn that into a message
reliably: a SIGSEGV handler that returns re-runs the faulting instruction, and faulthandler only
prints a stack dump before dying. So the evaluation runs in a child, and the parent, which never
loads llama.cpp, turns the child's death by a signal into an OcciError naming the file and the
likely cause. The child is started with `spawn` (a fresh interpreter): forking a process that
already runs torch's or OpenMP's threads can deadlock.
"""
from __future__ import annotations

import multiprocessing
import signal
import traceback
from pathlib import Path
from typing import Any, Callable

from occi.errors import OcciError

AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16", "amx_fp16")
"""/proc/cpuinfo flags of Intel's Advanced Matrix Extensions (Sapphire Rapids and later)."""


class ChildTraceback(Exception):
    """The traceback of an unexpected error in the child, kept as the cause of the re-raised error."""


def run_in_child(gguf_file: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` in a spawned child evaluating `gguf_file`: its result, or its
    exception raised here; a death by a signal raises one OcciError line naming the file."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(send, function, args, kwargs), name="occi-eval-gguf")
    child.start()
    send.close()
    try:
        try:
            outcome = receive.recv()  # EOFError: the child died before it could answer
        except EOFError:
            outcome = None
        child.join()
    finally:
        if child.is_alive():  # interrupted here (Ctrl-C reaches the child too): give it a moment, then stop it
            child.join(10)
            if child.is_alive():
                child.terminate()
                child.join()
        receive.close()
    if outcome is None:
        raise OcciError(death_message(gguf_file, child.exitcode))
    kind, value, child_traceback = outcome
    if kind == "ok":
        return value
    if child_traceback:
        raise value from ChildTraceback(child_traceback)
    raise value


def _child_main(send, function: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    try:
        outcome = ("ok", function(*args, **kwargs), None)
    except OcciError as err:
        outcome = ("error", err, None)
    except BaseException as err:  # a bug or an interrupt: re-raised in the parent with this traceback
        outcome = ("error", err, traceback.format_exc())
    try:
        send.send(outcome)
    except Exception as err:  # an exception that does not pickle
        send.send(("error", RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]}"), outcome[2] or repr(err)))
    send.close()


def death_message(gguf_file: str, exitcode: int | None, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """One line: the file, how the evaluating process died, and the likely cause."""
    if exitcode is None or exitcode >= 0:
        return f"{gguf_file}: the process evaluating it exited with status {exitcode} without a result"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    what = f"llama.cpp crashed ({name}) while evaluating it" if -exitcode in CRASHES \
        else f"the process evaluating it was killed ({name})"
    return f"{gguf_file}: {what}; likely cause: {likely_cause(gguf_file, -exitcode, cpu_flags(cpuinfo))}"


CRASHES = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)
"""Signals a process sends itself on a fault of its own code (GGML_ASSERT aborts)."""


def likely_cause(gguf_file: str, signum: int, flags: set[str]) -> str:
    if signum == signal.SIGKILL:
        return "out of memory (the kernel's OOM killer sends SIGKILL); evaluate a smaller file or free memory"
    if signum not in CRASHES:
        return "a signal from outside (a job's time limit, a user); run the same command again"
    if signum == signal.SIGILL:
        return ("llama-cpp-python was built for another CPU (scripts/install.sh builds it for the machine it "
                "runs on and caches the wheel in ~/.cache/occi-wheels): delete that wheel and install again here")
    kind = file_type(gguf_file)
    this_file = f"this {kind} file" if kind else "this file"
    amx = [flag for flag in AMX_FLAGS if flag in flags]
    if amx:
        return (f"llama.cpp's AMX kernels on this CPU ({', '.join(amx)}), which crash on q8_0, q4_0 and q4_1 "
                f"files ({this_file}); occi turns them off, so this llama-cpp-python may not honour that: "
                "evaluate the f16 file, or build llama-cpp-python without AMX (CMAKE_ARGS=-DGGML_NATIVE=OFF)")
    return (f"a fault in llama.cpp's C code on {this_file} (this CPU has no AMX): write it again with "
            "`occi export --format gguf`, or evaluate the f16 file")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo cannot be read."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def file_type(gguf_file: str) -> str:
    """The file's type as llama.cpp names it (q8_0, f16, q4_k_m...), or "" where it cannot be read."""
    try:
        import gguf  # loads gguf: only when used

        field = gguf.GGUFReader(gguf_file).fields.get("general.file_type")
        name = gguf.LlamaFileType(int(field.contents())).name
    except Exception:  # a damaged or unreadable file: the message still names the file
        return ""
    return name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()
