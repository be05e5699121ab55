"""A GGUF model for lm-eval, run in this process by llama.cpp (through llama-cpp-python).

Why not lm-eval's own `gguf` model: it talks to a separately started llama.cpp server over HTTP,
reads log-probabilities from the completion API (top-k only, located by character offsets), and
does not implement `loglikelihood_rolling`, so it cannot give bits per byte at all. This class
asks llama.cpp for the logits of every position (`logits_all`) and scores tokens exactly the
way occi's transformers wrapper does, so the two are comparable number for number:
- text is tokenized by the GGUF's own tokenizer (llama.cpp's), with no BOS token added;
- a continuation's tokens are those of context+continuation after the context's;
- rolling log-likelihoods use lm-eval's windows over the model's training context, the first
  one conditioned on the BOS token (as lm-eval's HF model does), every text token scored.
Registered in lm-eval as `occi-llamacpp` (`--model occi-llamacpp --model_args path=FILE.gguf`
after `import occi.eval.llamacpp`).

llama.cpp's extra CPU buffer types (weights repacked for AMX or for wider SIMD kernels) are turned
off: with them, q8_0, q4_0 and q4_1 files crash on the first decode on CPUs with AMX, and without
them every CPU runs the same kernels on the same weight layout.
"""
from __future__ import annotations

import atexit
from contextlib import contextmanager

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from occi.machine import cores


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def load_llama(path: str, n_ctx: int = 0, threads: int | None = None, gpu_layers: int = 0, f32_cache: bool = False):
    """llama_cpp.Llama with logits for every position, quiet, at the model's own context length.

    `f32_cache`: keys and values cached in f32 instead of llama.cpp's default f16 (then an f32
    file gives transformers' fp32 logits to about 1e-6: used to check the conversion itself)."""
    from llama_cpp import Llama  # optional: llama_cpp is no core dependency


    probe_ctx = n_ctx
    if not n_ctx:  # llama.cpp pads a context it is given; ask for the trained one explicitly
        import gguf  # loads gguf: only when used

        reader = gguf.GGUFReader(path)
        arch = reader.fields["general.architecture"].contents()
        probe_ctx = int(reader.fields[f"{arch}.context_length"].contents())
    cache = {"type_k": 0, "type_v": 0} if f32_cache else {}  # 0: GGML_TYPE_F32
    with _without_extra_buffer_types():
        llm = Llama(model_path=path, n_ctx=probe_ctx, n_batch=min(probe_ctx, 2048), logits_all=True,
                    n_threads=threads or cores(), n_gpu_layers=gpu_layers, verbose=False, **cache)
    if getattr(llm.model_params, "use_extra_bufts", False):
        raise RuntimeError("llama-cpp-python did not take use_extra_bufts=False")  # a changed Llama constructor
    # freed before the interpreter tears its modules down (else llama-cpp-python's finaliser prints a traceback)
    atexit.register(llm.close)
    return llm, probe_ctx


@contextmanager
def _without_extra_buffer_types():
    """llama_cpp.Llama (0.3.36) has no argument for llama.cpp's `use_extra_bufts` (an unknown keyword
    is silently ignored): it builds its model parameters from `llama_model_default_params()`, so
    that function gives them with the flag off while a model loads."""
    from llama_cpp import llama_cpp as bindings  # optional: llama_cpp is no core dependency

    defaults = bindings.llama_model_default_params

    def without_extra_buffer_types():
        params = defaults()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffer_types
    try:
        yield
    finally:
        bindings.llama_model_default_params = defaults


@register_model("occi-llamacpp")
class LlamaCppLM(TemplateLM):
    """lm-eval LM over a GGUF file: loglikelihood, rolling loglikelihood, greedy generation."""

    backend = "causal"

    def __init__(self, path: str, n_ctx: int = 0, threads: int | None = None, gpu_layers: int = 0,
                 f32_cache: bool = False, **_ignored):
        super().__init__()
        self.path = path
        self.llm, self.max_length = load_llama(path, int(n_ctx), threads, int(gpu_layers), bool(f32_cache))
        # llama.cpp makes up a BOS/EOS id (11 for BPE vocabularies) when the file names none: only
        # the file's own ids count, as only the tokenizer's own count in lm-eval's HF model
        meta = self.llm.metadata
        self._bos = int(meta.get("tokenizer.ggml.bos_token_id", -1))
        self._eos = int(meta.get("tokenizer.ggml.eos_token_id", self.llm.token_eos()))

    @property
    def eot_token_id(self) -> int:
        return self._eos

    @property
    def prefix_token_id(self) -> int:
        return self._bos if self._bos >= 0 else self._eos

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_kwargs) -> list[int]:
        if not string:
            return []
        return self.llm.tokenize(string.encode("utf-8"), add_bos=bool(add_special_tokens), special=False)

    def tok_decode(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    def logits(self, tokens: list[int]) -> np.ndarray:
        """Logits [len(tokens), vocab] of one sequence, from an empty context."""
        self.llm.reset()
        self.llm.eval(tokens)
        return np.array(self.llm.scores[: len(tokens)], dtype=np.float32)

    def score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """(sum of log p(continuation | context), whether greedy decoding would give it)."""
        whole = (context + continuation)[-(self.max_length + 1):]
        inputs = whole[:-1]
        logprobs = log_softmax(self.logits(inputs)[-len(continuation):])
        picked = logprobs[np.arange(len(continuation)), continuation]
        return float(picked.sum()), bool((logprobs.argmax(axis=-1) == np.array(continuation)).all())

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **_kwargs):
        results = []
        for key, context, continuation in tqdm(requests, disable=disable_tqdm, desc="loglikelihood (llama.cpp)"):
            result = self.score(context, continuation)
            results.append(result)
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        results = []
        for (text,) in tqdm([r.args for r in requests], disable=disable_tqdm, desc="rolling (llama.cpp)"):
            windows = map(make_disjoint_window, get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            total = sum(self.score(context, continuation)[0] for context, continuation in windows)
            results.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
        return results

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        results = []
        for context, settings in tqdm([r.args for r in requests], disable=disable_tqdm, desc="generate (llama.cpp)"):
            until = settings.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            prompt = self.tok_encode(context)[-(self.max_length - 1):]
            budget = min(int(settings.get("max_gen_toks", 256)), self.max_length - len(prompt))
            text = self.tok_decode(self.greedy(prompt, budget))
            for stop in until:
                text = text.split(stop)[0]
            results.append(text)
            self.cache_hook.add_partial("generate_until", (context, settings), text)
        return results

    def greedy(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation (argmax of llama.cpp's logits), stopping at the end-of-text token."""
        new: list[int] = []
        self.llm.reset()
        self.llm.eval(prompt)
        for _ in range(max_new_tokens):
            token = int(np.argmax(self.llm.scores[self.llm.n_tokens - 1]))
            if token == self._eos:
                break
            new.append(token)
            self.llm.eval([token])
        return new
