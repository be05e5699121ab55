"""`occi export --format gguf` and GGUF evaluation: files read back with gguf-py, run by llama.cpp.

Models are built here: the demo run's own tokenizer (all 28 languages, through the command line)
under a random Llama of the `tiny` shape laid out exactly as `occi export` writes <run>/hf/, and
tiny random Qwen2, Qwen3 and Mistral models and byte-level BPE tokenizers saved by transformers.
llama.cpp runs through llama-cpp-python; tests that need it are skipped without it, except under
CI=true (CI installs it), where they fail.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import DEMO_SAMPLES, REPO, have_module, in_ci, needs_module, occi, small_disk

ALL_LANGS = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["languages"]
# scored by the eval test: three scripts (Latin, Greek, Latin with diacritics); the token-id checks use all 28
EVAL_LANGS = ["de", "el", "fi"]
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

needs_llama_cpp = needs_module("llama_cpp", "llama-cpp-python")


def demo_texts(code: str) -> list[str]:
    return [json.loads(line)["text"] for line in (DEMO_SAMPLES / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()]


def write_config(folder: Path, languages: list[str], **extra) -> Path:
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    demo.update({"name": "gguftest", "languages": languages, **extra})
    path = folder / "gguftest.yaml"
    path.write_text(yaml.safe_dump(demo))
    return path


def export_like_occi(run_dir: Path, config: Path) -> Path:
    """<run>/hf/ as `occi export` writes it (config, safetensors, generation config, the run's
    tokenizer files, _DONE), with random weights of the config's model shape instead of a
    trained checkpoint: the GGUF path reads nothing else."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    from occi import config as config_module
    from occi.fsutil import mark_done
    from occi.train.export import _special_ids
    from occi.families import family
    from occi.train.export import hf_config

    cfg = config_module.load(str(config))
    tokenizer_dir = run_dir / "tokenizer"
    special = _special_ids(tokenizer_dir)
    torch.manual_seed(0)
    vocab = (json.loads((tokenizer_dir / "report.json").read_text())["tokenizers"].popitem()[1]["vocab_size"] + 127) // 128 * 128
    model = LlamaForCausalLM(hf_config(family("llama", "test"), cfg.model, None, vocab, special, torch.float32))  # weights ~ N(0, 0.02)
    hf = run_dir / "hf"
    model.save_pretrained(hf, safe_serialization=True)
    GenerationConfig(bos_token_id=special["bos"], eos_token_id=special["eos"], pad_token_id=special.get("pad"),
                     max_new_tokens=64).save_pretrained(hf)
    for item in tokenizer_dir.iterdir():
        if item.is_file() and not item.name.startswith(("_", ".")) and item.suffix != ".png":
            shutil.copy2(item, hf / item.name)
    mark_done(hf)
    return hf


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A run of every demo language with corpora, tokenizer and an occi-style hf/ export."""
    folder = tmp_path_factory.mktemp("gguf")
    config = write_config(folder, ALL_LANGS, eval={"batch_size": 4, "limit": 4, "heldout_max_docs": 2,
                                                   "languages": EVAL_LANGS})
    run_dir = folder / "run"
    for stage in (["corpora", "build"], ["tokenizer", "train"]):
        done = occi(*stage, str(config), "--run-dir", str(run_dir))
        assert done.returncode == 0, done.stderr[-2000:]
    export_like_occi(run_dir, config)
    result = occi("export", str(config), "--run-dir", str(run_dir), "--format", "gguf", "--quant", "f32,f16,q8_0,q4_0")
    assert result.returncode == 0, result.stderr[-3000:]
    return config, run_dir


def hf_logits(hf_dir: Path, tokens: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].numpy()


def reader_value(reader, key: str):
    field = reader.fields[key]
    return field.contents()


# ---------------------------------------------------------------- the file, read back with gguf-py

def test_tensors_metadata_and_vocabulary_read_back_equal_the_export(demo):
    import gguf
    import sentencepiece as spm
    from safetensors.numpy import load_file

    from occi.gguf.arch import interleave_rows

    _, run_dir = demo
    hf = run_dir / "hf"
    config = json.loads((hf / "config.json").read_text())
    reader = gguf.GGUFReader(str(run_dir / "gguf" / "occi-gguftest-f32.gguf"))
    assert reader_value(reader, "general.architecture") == "llama"
    assert reader_value(reader, "general.file_type") == gguf.LlamaFileType.ALL_F32
    assert reader_value(reader, "general.languages") == ALL_LANGS
    expected = {"llama.block_count": config["num_hidden_layers"], "llama.embedding_length": config["hidden_size"],
                "llama.feed_forward_length": config["intermediate_size"],
                "llama.attention.head_count": config["num_attention_heads"],
                "llama.attention.head_count_kv": config["num_key_value_heads"],
                "llama.context_length": config["max_position_embeddings"], "llama.vocab_size": config["vocab_size"],
                "llama.rope.dimension_count": config["head_dim"]}
    for key, value in expected.items():
        assert reader_value(reader, key) == value, key
    assert reader_value(reader, "llama.rope.freq_base") == pytest.approx(config["rope_parameters"]["rope_theta"]
                                                                        if "rope_parameters" in config else config["rope_theta"])
    assert reader_value(reader, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(config["rms_norm_eps"])

    # the weights: every tensor, exactly (f32), q and k rows in llama.cpp's rotary order
    weights = load_file(str(hf / "model.safetensors"))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == len(weights)
    for hf_name, value in weights.items():
        tensor = tensors[names.get_name(hf_name, try_suffixes=(".weight",))]
        data = np.array(tensor.data).reshape(value.shape)
        if "q_proj" in hf_name:
            value = interleave_rows(value, config["num_attention_heads"])
        elif "k_proj" in hf_name:
            value = interleave_rows(value, config["num_key_value_heads"])
        np.testing.assert_array_equal(data, value, err_msg=hf_name)

    # the vocabulary: SentencePiece's pieces, scores and types, then [PAD] rows up to the embedding
    sp = spm.SentencePieceProcessor(model_file=str(hf / "tokenizer.model"))
    tokens = reader_value(reader, "tokenizer.ggml.tokens")
    scores = reader_value(reader, "tokenizer.ggml.scores")
    types = reader_value(reader, "tokenizer.ggml.token_type")
    assert reader_value(reader, "tokenizer.ggml.model") == "llama"
    assert len(tokens) == config["vocab_size"] > sp.get_piece_size()
    for index in range(sp.get_piece_size()):
        assert tokens[index] == sp.id_to_piece(index)
        assert scores[index] == pytest.approx(sp.get_score(index))
    assert types[sp.unk_id()] == 2 and types[sp.bos_id()] == 3 and types[sp.eos_id()] == 3
    assert types[sp.piece_to_id("<0x41>")] == 6
    assert tokens[sp.get_piece_size():] == [f"[PAD{i}]" for i in range(sp.get_piece_size(), config["vocab_size"])]
    assert set(types[sp.get_piece_size():]) == {5}
    assert (reader_value(reader, "tokenizer.ggml.bos_token_id"), reader_value(reader, "tokenizer.ggml.eos_token_id"),
            reader_value(reader, "tokenizer.ggml.unknown_token_id")) == (sp.bos_id(), sp.eos_id(), sp.unk_id())
    # occi's tokenizer adds no BOS token; its generation config is greedy
    assert reader_value(reader, "tokenizer.ggml.add_bos_token") is False
    assert reader_value(reader, "tokenizer.ggml.add_space_prefix") is True
    assert reader_value(reader, "general.sampling.temp") == 0.0
    assert "tokenizer.chat_template" not in reader.fields


def test_quantized_files_use_the_type_where_rows_allow_it_and_a_manifest_lists_them(demo):
    import gguf

    _, run_dir = demo
    reader = gguf.GGUFReader(str(run_dir / "gguf" / "occi-gguftest-q8_0.gguf"))
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q8_0  # rows of 64 values: two blocks
    assert types["blk.0.ffn_down.weight"] == gguf.GGMLQuantizationType.F16  # rows of 176 values: not whole blocks
    manifest = json.loads((run_dir / "gguf" / "manifest.json").read_text())
    assert {entry["quant"] for entry in manifest.values()} == {"f32", "f16", "q8_0", "q4_0"}
    for name, entry in manifest.items():
        assert entry["bytes"] == (run_dir / "gguf" / name).stat().st_size
    assert manifest["occi-gguftest-q8_0.gguf"]["bytes"] < manifest["occi-gguftest-f16.gguf"]["bytes"] \
        < manifest["occi-gguftest-f32.gguf"]["bytes"]


def test_ollama_modelfile_sits_beside_each_file(demo):
    _, run_dir = demo
    text = (run_dir / "gguf" / "occi-gguftest-q8_0.Modelfile").read_text()
    lines = text.splitlines()
    assert "FROM ./occi-gguftest-q8_0.gguf" in lines
    assert 'TEMPLATE """{{ .Prompt }}"""' in lines  # a base model continues the prompt
    assert 'PARAMETER stop "</s>"' in lines
    assert "PARAMETER num_ctx 128" in lines and "PARAMETER temperature 0" in lines and "PARAMETER num_predict 64" in lines


# ---------------------------------------------------------------- llama.cpp runs it

@needs_llama_cpp
def test_llama_cpp_gives_transformers_logits_greedy_tokens_and_token_ids(demo):
    from transformers import AutoTokenizer

    from occi.eval.llamacpp import LlamaCppLM

    _, run_dir = demo
    hf = run_dir / "hf"
    tokenizer = AutoTokenizer.from_pretrained(hf)
    # the same token ids as transformers on the demo text of every language
    lm = LlamaCppLM(str(run_dir / "gguf" / "occi-gguftest-f16.gguf"))
    for code in ALL_LANGS:
        for text in demo_texts(code)[:3]:
            assert lm.tok_encode(text) == tokenizer(text)["input_ids"], code
    prompt = tokenizer(demo_texts("fr")[0])["input_ids"][:40]
    expected = hf_logits(hf, prompt)
    actual = lm.logits(prompt)
    assert np.abs(actual - expected).max() < 1e-3, np.abs(actual - expected).max()  # seen: 3e-4
    # the f32 file with an f32 cache: the conversion itself is exact
    exact = LlamaCppLM(str(run_dir / "gguf" / "occi-gguftest-f32.gguf"), f32_cache=True).logits(prompt)
    assert np.abs(exact - expected).max() < 1e-4, np.abs(exact - expected).max()  # seen: 2e-6
    # the same greedy continuation
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
    generated = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False,
                               eos_token_id=lm.eot_token_id)[0, len(prompt):].tolist()
    assert lm.greedy(prompt, 24) == [t for t in generated if t != lm.eot_token_id][: len(lm.greedy(prompt, 24))]
    assert len(lm.greedy(prompt, 24)) == len([t for t in generated if t != lm.eot_token_id])


@needs_llama_cpp
def test_q8_0_logits_stay_within_the_stated_tolerance(demo):
    """q8_0 keeps 8 bits per weight with a scale per 32 weights: on this model (logits with a
    standard deviation of about 0.16) they stay within 0.02 of transformers' (seen: 0.009) and
    pick the same top token at 90 % of positions or more (seen: 97 %)."""
    from occi.eval.llamacpp import LlamaCppLM

    _, run_dir = demo
    prompt = LlamaCppLM(str(run_dir / "gguf" / "occi-gguftest-f16.gguf")).tok_encode(demo_texts("de")[0])[:40]
    expected = hf_logits(run_dir / "hf", prompt)
    actual = LlamaCppLM(str(run_dir / "gguf" / "occi-gguftest-q8_0.gguf")).logits(prompt)
    assert np.abs(actual - expected).max() < 0.02, np.abs(actual - expected).max()
    assert (actual.argmax(-1) == expected.argmax(-1)).mean() > 0.9


@needs_llama_cpp
def test_llama_cpp_loads_quantized_files_without_extra_buffer_types(demo):
    """llama.cpp's extra CPU buffer types (AMX, and repacked weights for wider SIMD kernels) crash
    q8_0/q4_0/q4_1 files on CPUs with AMX: occi loads every file without them. This CPU repacks
    q4_0 into the CPU_REPACK buffer type when they are on; llama.cpp's own log shows which it used."""
    import ctypes

    import llama_cpp
    from llama_cpp import _logger

    from occi.eval.llamacpp import LlamaCppLM

    _, run_dir = demo
    log: list[str] = []

    @llama_cpp.llama_log_callback
    def record(level, text, user_data):
        log.append(text.decode("utf-8", errors="replace"))

    llama_cpp.llama_log_set(record, ctypes.c_void_p(0))
    try:
        lm = LlamaCppLM(str(run_dir / "gguf" / "occi-gguftest-q4_0.gguf"))
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    buffers = [line for line in "".join(log).splitlines() if "model buffer size" in line]
    assert buffers and not any("REPACK" in line or "AMX" in line for line in buffers), buffers
    assert lm.llm.model_params.use_extra_bufts is False
    prompt = lm.tok_encode(demo_texts("de")[0])[:40]
    expected = hf_logits(run_dir / "hf", prompt)
    assert (lm.logits(prompt).argmax(-1) == expected.argmax(-1)).mean() > 0.5  # 4 bits per weight still runs


@needs_llama_cpp
def test_a_crash_of_llama_cpp_while_evaluating_is_one_line_naming_the_file(demo, tmp_path):
    """A native crash (here a real SIGSEGV sent to the process evaluating the q8_0 file, once it
    has the file mapped) ends `occi eval` with one line naming the file and the likely cause, not
    with exit status 139 and nothing said."""
    import resource
    import signal
    import time

    config, run_dir = demo
    path = run_dir / "gguf" / "occi-gguftest-q8_0.gguf"
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "occi.cli", "eval", str(config), "--run-dir", str(run_dir), "--suite", "offline",
             "--model", str(path)], stdout=subprocess.DEVNULL, stderr=stderr,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))  # no core file
        try:
            deadline = time.monotonic() + 300
            while (evaluating := _process_mapping(process.pid, path)) is None:
                assert process.poll() is None, stderr_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the evaluating process never opened the file"
                time.sleep(0.02)
            os.kill(evaluating, signal.SIGSEGV)
            returncode = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    output = stderr_path.read_text()
    assert returncode == 2, f"exit status {returncode}:\n{output[-3000:]}"
    line = output.strip().splitlines()[-1]
    assert line.startswith(f"occi: error: {path}: llama.cpp crashed (SIGSEGV) while evaluating it; likely cause: "), line
    assert "AMX" in line and "q8_0" in line and "Traceback" not in output


def _process_mapping(parent: int, path: Path) -> int | None:
    """`parent` or its child, whichever has `path` mapped in memory (llama.cpp and gguf-py mmap
    the file)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent in (ppid, int(entry.name)) and str(path) in (entry / "maps").read_text():
                return int(entry.name)
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return None


def _bpe_tokenizer(folder: Path, split: str, specials: list[str], bos: str | None, eos: str,
                   chat_template: str | None = None) -> None:
    """A byte-level BPE tokenizer trained here on the demo text, saved as transformers does."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([t for code in ALL_LANGS for t in demo_texts(code)], trainer)
    if bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos)
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(folder)


def _tiny_model(kind: str, folder: Path, vocab_size: int, bos: int | None, eos: int) -> None:
    import torch
    import transformers

    shapes = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, vocab_size=vocab_size,
                  bos_token_id=bos, eos_token_id=eos)
    extra = {"qwen3": {"head_dim": 32}, "llama-tied": {"tie_word_embeddings": True}}.get(kind, {})
    config_class, model_class = {"llama-tied": ("LlamaConfig", "LlamaForCausalLM"),
                                 "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
                                 "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
                                 "mistral": ("MistralConfig", "MistralForCausalLM")}[kind]
    torch.manual_seed(1)
    model = getattr(transformers, model_class)(getattr(transformers, config_class)(**shapes, **extra))
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.08)
            elif "norm" in "".join(n for n, p in model.named_parameters() if p is param):
                param.uniform_(0.8, 1.2)
            else:
                param.normal_(0.0, 0.05)  # qkv biases
    model.save_pretrained(folder)


@pytest.mark.parametrize("kind,tokenizer_kind", [("qwen2", "qwen2-chatml"), ("qwen3", "qwen2-chatml"),
                                                 ("mistral", "llama3"), ("llama-tied", "llama3")])
def test_other_dense_architectures_and_bpe_tokenizers(kind, tokenizer_kind, tmp_path):
    import gguf

    hf = tmp_path / kind
    if tokenizer_kind == "llama3":
        _bpe_tokenizer(hf, LLAMA3_SPLIT, ["<|begin_of_text|>", "<|end_of_text|>"], "<|begin_of_text|>", "<|end_of_text|>")
    else:
        _bpe_tokenizer(hf, QWEN2_SPLIT, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", CHATML)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf)
    vocab_size = (len(tokenizer) + 63) // 64 * 64
    _tiny_model(kind, hf, vocab_size, tokenizer.bos_token_id, tokenizer.eos_token_id)
    config = write_config(tmp_path, ["de", "fr"])
    run_dir = tmp_path / "run"
    shutil.copytree(hf, run_dir / "hf")
    result = occi("export", str(config), "--run-dir", str(run_dir), "--format", "gguf", "--quant", "f16,f32")
    assert result.returncode == 0, result.stderr[-3000:]
    path = run_dir / "gguf" / "occi-gguftest-f16.gguf"
    reader = gguf.GGUFReader(str(path))
    arch = {"qwen2": "qwen2", "qwen3": "qwen3"}.get(kind, "llama")
    assert reader_value(reader, "general.architecture") == arch
    assert reader_value(reader, "tokenizer.ggml.model") == "gpt2"
    assert reader_value(reader, "tokenizer.ggml.pre") == ("llama-bpe" if tokenizer_kind == "llama3" else "qwen2")
    tokens = reader_value(reader, "tokenizer.ggml.tokens")
    assert tokens[: len(tokenizer)] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    merges = json.loads((hf / "tokenizer.json").read_text())["model"]["merges"]
    assert reader_value(reader, "tokenizer.ggml.merges") == [m if isinstance(m, str) else " ".join(m) for m in merges]
    assert reader_value(reader, "tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    names = {t.name for t in reader.tensors}
    assert ("blk.0.attn_q.bias" in names) == (kind == "qwen2")
    assert ("blk.0.attn_q_norm.weight" in names) == (kind == "qwen3")
    assert ("output.weight" in names) == (kind != "llama-tied")
    modelfile = (run_dir / "gguf" / "occi-gguftest-f16.Modelfile").read_text()
    if tokenizer_kind == "qwen2-chatml":
        assert reader_value(reader, "tokenizer.chat_template") == CHATML
        assert "<|im_start|>assistant" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    else:
        assert reader_value(reader, "tokenizer.ggml.add_bos_token") is True
    if not have_module("llama_cpp") and not in_ci():
        return
    from occi.eval.llamacpp import LlamaCppLM

    lm = LlamaCppLM(str(path))
    for code in ALL_LANGS:
        text = demo_texts(code)[0]
        assert lm.tok_encode(text) == tokenizer(text, add_special_tokens=False)["input_ids"], code
    prompt = tokenizer(demo_texts("pl")[0], add_special_tokens=False)["input_ids"][:48]
    expected = hf_logits(hf, prompt)
    # every tensor in llama.cpp's layout for this architecture: the f32 file gives transformers' logits
    exact = LlamaCppLM(str(run_dir / "gguf" / "occi-gguftest-f32.gguf"), f32_cache=True).logits(prompt)
    assert np.abs(exact - expected).max() < 1e-4, np.abs(exact - expected).max()
    assert (lm.logits(prompt).argmax(-1) == expected.argmax(-1)).mean() > 0.9


# ---------------------------------------------------------------- evaluation, leaderboard, card

@pytest.mark.slow
@needs_llama_cpp
def test_eval_of_gguf_files_sits_beside_the_transformers_model(demo, tmp_path):
    config, run_dir = demo
    for model in ("hf", "gguf/occi-gguftest-f16.gguf", "gguf/occi-gguftest-q8_0.gguf"):
        result = occi("eval", str(config), "--run-dir", str(run_dir), "--suite", "offline",
                      "--model", str(run_dir / model), timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    tables = {name: json.loads((run_dir / "eval" / f"table-{name}.json").read_text())
              for name in ("hf", "occi-gguftest-f16.gguf", "occi-gguftest-q8_0.gguf")}
    bpb = {name: {c["language"]: c["value"] for c in t["cells"] if c["family"] == "bpb" and c["state"] == "done"}
           for name, t in tables.items()}
    assert set(bpb["hf"]) == set(EVAL_LANGS)
    for code in EVAL_LANGS:  # f16 llama.cpp scores the text as transformers does
        assert bpb["occi-gguftest-f16.gguf"][code] == pytest.approx(bpb["hf"][code], rel=1e-3), code
        assert bpb["occi-gguftest-q8_0.gguf"][code] == pytest.approx(bpb["hf"][code], rel=2e-2), code
    board = occi("leaderboard", str(run_dir / "eval"), "--out", str(tmp_path / "board"))
    assert board.returncode == 0, board.stderr[-2000:]
    cells = json.loads((tmp_path / "board" / "leaderboard.json").read_text())["cells"]
    models = {c["model"] for c in cells if c["benchmark"] == "bpb" and c["language"] == "de"}
    assert models == {"occi-gguftest", "occi-gguftest-f16.gguf", "occi-gguftest-q8_0.gguf"}
    card = occi("card", str(config), "--run-dir", str(run_dir), "--out", str(tmp_path / "card.md"))
    assert card.returncode == 0, card.stderr[-2000:]
    text = (tmp_path / "card.md").read_text()
    section = text.split("## Run it locally")[1].split("\n## ")[0]
    for name in ("occi-gguftest-f32.gguf", "occi-gguftest-f16.gguf", "occi-gguftest-q8_0.gguf"):
        assert f"`{name}`" in section
    assert "| el | " in section and "%" in section  # a per-language cost row


# ---------------------------------------------------------------- errors

def test_missing_or_broken_exports_and_bad_types_get_one_line(demo, tmp_path):
    config, run_dir = demo
    empty = tmp_path / "empty"
    result = occi("export", str(config), "--run-dir", str(empty), "--format", "gguf")
    assert result.returncode == 2 and "run `occi export" in result.stderr and len(result.stderr.splitlines()) == 1
    broken = tmp_path / "broken"
    shutil.copytree(run_dir / "hf", broken / "hf")
    (broken / "hf" / "model.safetensors").write_bytes(b"not safetensors")
    result = occi("export", str(config), "--run-dir", str(broken), "--format", "gguf")
    assert result.returncode == 2 and "model.safetensors" in result.stderr and len(result.stderr.splitlines()) == 1
    result = occi("export", str(config), "--run-dir", str(run_dir), "--format", "gguf", "--quant", "q9_9")
    assert result.returncode == 2 and "unknown type 'q9_9'" in result.stderr
    config_json = json.loads((run_dir / "hf" / "config.json").read_text())
    odd = tmp_path / "odd"
    shutil.copytree(run_dir / "hf", odd / "hf")
    (odd / "hf" / "config.json").write_text(json.dumps({**config_json, "architectures": ["GPT2LMHeadModel"]}))
    result = occi("export", str(config), "--run-dir", str(odd), "--format", "gguf")
    assert result.returncode == 2 and "GPT2LMHeadModel" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_full_disk_names_the_file_and_the_free_space(demo, tmp_path):
    """gguf-py writes with numpy's tofile, whose short write says only "N requested and M written":
    on a real full disk (a small tmpfs) the export says which file, what it needs and what is free,
    in one line, and leaves no partial file behind."""
    config, run_dir = demo
    with small_disk(tmp_path / "disk", "256k") as disk:
        run = disk / "run"
        run.mkdir()
        (run / "hf").symlink_to(run_dir / "hf")
        result = occi("export", str(config), "--run-dir", str(run), "--format", "gguf", "--quant", "f32")
        left = sorted(p.name for p in (run / "gguf").iterdir()) if (run / "gguf").exists() else []
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("occi: error:")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = errors[0]
    assert line.startswith(f"occi: error: {run / 'gguf' / 'occi-gguftest-f32.gguf'}: no space left on the device"), line
    assert " is free in " in line and "it needs about " in line and "MB" in line
    assert left == []


def test_types_only_llama_cpp_makes_name_what_they_need_when_it_is_absent(demo, tmp_path):
    """Without llama-quantize on PATH and without llama-cpp-python, q4_k_m is refused in one line
    naming what it needs and what can be written instead."""
    config, run_dir = demo
    script = ("import sys; sys.modules['llama_cpp'] = None; from occi.cli import main; "
              f"sys.exit(main(['export', {str(config)!r}, '--run-dir', {str(run_dir)!r}, '--format', 'gguf', "
              "'--quant', 'q4_k_m']))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "q4_k_m" in result.stderr and "llama-quantize" in result.stderr and "q8_0" in result.stderr


@needs_llama_cpp
def test_k_quants_are_made_by_llama_cpp_and_run(demo):
    _, run_dir = demo
    import gguf

    config = run_dir.parent / "gguftest.yaml"
    result = occi("export", str(config), "--run-dir", str(run_dir), "--format", "gguf", "--quant", "q4_k_m")
    assert result.returncode == 0, result.stderr[-3000:]
    path = run_dir / "gguf" / "occi-gguftest-q4_k_m.gguf"
    reader = gguf.GGUFReader(str(path))
    assert reader_value(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_Q4_K_M
    from occi.eval.llamacpp import LlamaCppLM

    lm = LlamaCppLM(str(path))
    assert lm.logits(lm.tok_encode("Bonjour à tous"))[-1].shape == (json.loads((run_dir / "hf" / "config.json").read_text())["vocab_size"],)
