"""backend: vllm, for real: vLLM's CPU engine (its own venv, .venv-vllm, or vllm in this env)
writes the same greedy tokens as transformers, through `occi distill`, `occi generate` and the
generative eval paths (the fidelity suite, lm-eval's generate_until), on a tiny imported Qwen2.

One engine serves the whole module (occi/chat/vllm_backend.py starts one per model folder and
process): its start-up is most of this module's cost. vLLM's CPU attention needs a head width of
32 or more, so the model is 128 wide with 4 heads (the demo model's 16 is refused by vLLM)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from occi.errors import OcciError
from tests.chat_models import CHAT_TEMPLATE
from tests.conftest import occi, skip_unless_ci, write_jsonl
from tests.hf_bases import make_base

PROMPTS = ["Erkläre kurz, warum der Himmel blau ist.", "Wie kocht man eine Suppe?", "Was ist Wasser?"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny random Qwen2 base (hf_bases) given a chat template, with its vLLM engine started."""
    from transformers import AutoTokenizer

    from occi.chat import vllm_backend

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB for the KV cache; vLLM's default is 4
    try:
        vllm_backend.interpreter()
    except OcciError as err:
        skip_unless_ci(str(err))
    folder = make_base(tmp_path_factory.mktemp("vllm") / "qwen2", "qwen2", hidden_size=128, intermediate_size=128)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(folder))
    vllm_backend.engine(folder, "float32")
    return folder


def _transformers_greedy(folder: Path, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    answers = []
    with torch.no_grad():
        for ids in prompts:
            out = model.generate(torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=model.config.eos_token_id)
            answers.append([t for t in out[0, len(ids):].tolist() if t != model.config.eos_token_id])
    return answers


def test_vllm_writes_the_greedy_tokens_of_transformers(teacher):
    """Plain prompts of different lengths, batched in vLLM, one by one in transformers: the same
    ids, float32 on both sides."""
    from transformers import AutoTokenizer

    from occi.chat.vllm_backend import engine, stop_ids

    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    prompts = [tokenizer(text)["input_ids"] for text in PROMPTS]
    answers = engine(teacher, "float32").generate(prompts, 12, stop_token_ids=stop_ids(teacher, tokenizer))
    assert answers == _transformers_greedy(teacher, prompts, 12)
    assert any(len(set(a)) > 1 for a in answers)  # not one token repeated: a real comparison


def _distill_config(folder: Path, teacher: Path, backend: str) -> Path:
    write_jsonl(folder / "prompts" / "de.jsonl", [{"prompt": text} for text in PROMPTS])
    config = {"name": f"distill-{backend}", "languages": ["de"], "corpora": "demo",
              "distill": {"teacher": str(teacher), "prompts": {"de": "prompts/de.jsonl"}, "batch_size": 2,
                          "max_new_tokens": 10, "backend": backend}}
    path = folder / f"{backend}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def test_distill_through_vllm_writes_the_rows_of_transformers(teacher, tmp_path):
    """Batches of two (left padding in transformers, none in vLLM), greedy: the same rows."""
    from occi import config as run_config
    from occi.chat import distill

    rows = {}
    for backend in ("transformers", "vllm"):
        cfg, run = run_config.load_for_run(str(_distill_config(tmp_path, teacher, backend)), tmp_path / backend)
        assert distill.run(cfg, run).complete
        rows[backend] = [json.loads(line) for line in run.distill_rows("de").read_text(encoding="utf-8").splitlines()]
    assert len(rows["vllm"]) == len(PROMPTS) and all(row["provenance"]["backend"] == "vllm" for row in rows["vllm"])
    assert [r["messages"] for r in rows["vllm"]] == [r["messages"] for r in rows["transformers"]]


def test_generate_through_vllm_gives_the_answer_of_transformers(teacher, tmp_path):
    from occi import config as run_config
    from occi.chat.generate import generate

    cfg, run = run_config.load_for_run("demo", tmp_path / "run")
    answers = {backend: generate(cfg, run, PROMPTS[0], model=str(teacher), max_new_tokens=12, backend=backend)
               for backend in ("transformers", "vllm")}
    assert answers["vllm"][0].answer == answers["transformers"][0].answer
    assert answers["vllm"][0].new_tokens == answers["transformers"][0].new_tokens > 0
    assert answers["vllm"][1]["backend"] == "vllm"


def test_budget_forcing_with_vllm_is_one_line(tmp_path):
    result = occi("generate", "demo", "--run-dir", str(tmp_path / "run"), "--prompt", "Hallo", "--backend", "vllm",
                  "--min-thinking-tokens", "4")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "--backend vllm: budget forcing (--min/--max-thinking-tokens) rewrites the sequence token by token, "
        "which only the transformers backend does; drop one of them")


def test_eval_generation_through_vllm_matches_transformers(teacher, tmp_path):
    """The fidelity suite through `occi eval` (eval.backend: vllm) scores the answers that
    transformers writes; lm-eval's generate_until requests (gsm8k's kind: stop strings, a token
    budget) return the same texts."""
    from lm_eval.api.instance import Instance

    from occi import config as run_config
    from occi.eval import runner
    from occi.eval.model import OcciLM, VllmGenerationLM

    samples = {}
    for backend in ("transformers", "vllm"):
        path = tmp_path / f"{backend}.yaml"
        path.write_text(yaml.safe_dump({"name": "fidelity-vllm", "languages": ["de"], "corpora": "demo",
                                        "eval": {"suites": ["fidelity"], "fidelity_max_new_tokens": 8, "fidelity_max_prompts": 12,
                                                 "backend": backend}}), encoding="utf-8")
        cfg, run = run_config.load_for_run(str(path), tmp_path / backend)
        run.hf.parent.mkdir(parents=True, exist_ok=True)
        run.hf.symlink_to(teacher)  # the same folder: the module's engine serves it
        assert runner.run(cfg, run).complete
        samples[backend] = [json.loads(line)["answer"] for line in
                            next(run.eval.rglob("samples_occi_fidelity_de_*.jsonl")).read_text().splitlines()]
    assert samples["vllm"] == samples["transformers"] and any(samples["vllm"])

    requests = [Instance("generate_until", None, (text, {"until": ["\n\n", "."], "max_gen_toks": 10,
                                                         "do_sample": False}), 0) for text in PROMPTS[:2]]
    texts = {name: lm.generate_until(requests, disable_tqdm=True)
             for name, lm in (("transformers", OcciLM(pretrained=str(teacher), device="cpu", dtype="float32",
                                                      batch_size=2)),
                              ("vllm", VllmGenerationLM(str(teacher), "cpu", "float32", 2)))}
    assert texts["vllm"] == texts["transformers"] and any(texts["vllm"])
