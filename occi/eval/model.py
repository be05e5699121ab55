"""The model lm-eval evaluates: lm-eval's transformers wrapper, with one change.

Rolling log-likelihoods (bits per byte) are computed without a scored BOS token: lm-eval's
`loglikelihood_rolling` already puts the BOS token in front of the first window as context, so
a tokenizer that also adds BOS itself (Llama, Mistral, EuroLLM) makes the model predict BOS
from BOS and that token's log-likelihood is counted as if it were text. Other request types keep
the tokenizer's own habit, which is how those models were trained and are usually evaluated.
"""
from __future__ import annotations

from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text

from occi.chat.vllm_backend import engine, stop_ids


class OcciLM(HFLM):
    """HFLM whose rolling log-likelihoods score only the text's own tokens."""

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        saved = self.add_bos_token
        self.add_bos_token = False
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        finally:
            self.add_bos_token = saved


def load(model: str, device: str, dtype: str, batch_size: int, backend: str = "transformers"):
    """A transformers causal LM from a folder or a hub id (generating through vLLM with backend
    vllm), or a GGUF file (run by llama.cpp, occi/eval/llamacpp.py), ready for lm-eval."""
    if model.endswith(".gguf"):
        from occi.eval.llamacpp import LlamaCppLM  # loads numpy, tqdm: only when used

        return LlamaCppLM(model, gpu_layers=-1 if device.startswith("cuda") else 0)
    if backend == "vllm":
        return VllmGenerationLM(pretrained=model, device=device, dtype=dtype, batch_size=batch_size)
    return OcciLM(pretrained=model, device=device, dtype=dtype, batch_size=batch_size)


class VllmGenerationLM(OcciLM):
    """OcciLM whose generation requests (generate_until: gsm8k, and the fidelity suite) run on vLLM
    (occi/chat/vllm_backend.py); log-likelihood requests stay on transformers. The prompt tokens
    are HFLM's own (same encoding, same left truncation) and stop strings cut the decoded text as
    HFLM does, so greedy answers are the same text through both backends."""

    def __init__(self, pretrained: str, device: str, dtype: str, batch_size: int):
        super().__init__(pretrained=pretrained, device=device, dtype=dtype, batch_size=batch_size)
        self.folder, self.engine_dtype = pretrained, dtype
        self.stop = sorted({self.eot_token_id, *stop_ids(pretrained, self.tokenizer)})

    @property
    def generator(self):
        """The vLLM engine, started by the first generation request (log-likelihood suites never start it)."""
        return engine(self.folder, self.engine_dtype)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(index)
        results: list[str] = [""] * len(requests)
        for indices in groups.values():
            kwargs = normalize_gen_kwargs(requests[indices[0]].args[1], self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen_toks = kwargs.pop("max_gen_toks")
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0
            contexts = [requests[i].args[0] for i in indices]
            prompts = [self.tok_encode(c, left_truncate_len=self.max_length - max_gen_toks) for c in contexts]
            outputs = self.generator.generate(prompts, max_gen_toks, temperature, float(kwargs.get("top_p", 1.0)),
                                              seed=0, stop_token_ids=self.stop)
            think_end = self.think_end_token if isinstance(self.think_end_token, str) else None
            for i, context, tokens in zip(indices, contexts, outputs):
                text = postprocess_generated_text(generation=self.tok_decode(tokens), stop=until,
                                                  think_end_token=think_end)
                results[i] = text
                self.cache_hook.add_partial("generate_until", (context, requests[i].args[1]), text)
        return results
