"""`occi eval`: lm-eval through its Python API, one language x task family (a cell) at a time.

A cell that cannot run (an unreachable hub dataset, say) fails alone: its error is written
beside it and reported, and the other cells go on; completed cells are skipped on a re-run.
Results are saved in lm-eval's standard layout (results JSON and samples) under
<run>/eval/<suite>/<model>/<lang>/<family>/, plus occi's cell.json with the headline metric.
"""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

from occi.basemodel import is_base_run, resolve
from occi.config import RunConfig
from occi.errors import OcciError
from occi.eval import fidelity, tasks
from occi.eval.crashguard import run_in_child
from occi.eval.results import cell_folder, collect, format_table
from occi.eval.suites import SUITES, Cell, cells
from occi.fsutil import atomic_write_json, atomic_write_text, is_done, mark_done
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share
from occi.train.stage_models import model_name_of, named_model


def model_source(model: str) -> str:
    """What identifies a model: its folder's absolute path, or the hub id."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def registered_models(run: RunDir) -> dict[str, str]:
    """eval/models.json: label -> model source. A model inside the run directory is stored
    relative to it ("./hf"), so a moved or copied run still knows its own models; here it is
    resolved to where the run is now."""
    known = run.read_json(run.eval_models) or {}
    return {label: run.resolve(source) if source.startswith("./") else source for label, source in known.items()}


def model_label(run: RunDir, model: str) -> str:
    """The model's folder name under <run>/eval/<suite>/: the model folder's name or the hub id
    with / as __; when another model of this run already has that name, a short hash of the
    model's path is appended, so two folders both called `hf` never share (or skip) results."""
    source = model_source(model)
    name = Path(source).name if Path(model).expanduser().exists() else model.replace("/", "__")
    known = registered_models(run)
    label = name
    if known.get(label, source) != source:
        label = f"{name}-{hashlib.sha1(source.encode()).hexdigest()[:8]}"
    if known.get(label) != source:
        known[label] = source
        root = str(run.root.resolve()) + "/"
        atomic_write_json(run.eval_models, {key: "./" + path[len(root):] if path.startswith(root) else path
                                            for key, path in known.items()})
    return label


def display_name(cfg: RunConfig, run: RunDir, model: str) -> str:
    """The model's name in lm-eval's results files (and so on leaderboards): the run's model
    name for <run>/hf, the hub id, or the model folder's name."""
    if model_source(model) == model_source(str(run.hf)):
        return cfg.model_name
    named = model_name_of(run, model)
    if named:  # a stage model or the merged model: its eval.models name, as the leaderboard shows it
        return named
    return Path(model_source(model)).name if Path(model).expanduser().exists() else model


def _describe_environment_once() -> None:
    """lm-eval describes the machine and the git commit in every results file, by running torch's
    collect_env and git (about 0.3 s of subprocesses per call); occi calls simple_evaluate once
    per cell, so both are found on the first call and copied into the later ones."""
    import lm_eval.evaluator as evaluator  # loads lm-eval: only when used

    if getattr(evaluator.add_env_info, "occi_cached", False):
        return
    collect_env, git_hash = evaluator.add_env_info, evaluator.get_git_commit_hash
    cache: dict = {}
    commit: list = []

    def add_env_info(storage: dict) -> None:
        if not cache:
            before = set(storage)
            collect_env(storage)
            cache.update({key: storage[key] for key in set(storage) - before})
        else:
            storage.update(cache)

    def get_git_commit_hash():
        if not commit:
            commit.append(git_hash())
        return commit[0]

    add_env_info.occi_cached = True
    evaluator.add_env_info = add_env_info
    evaluator.get_git_commit_hash = get_git_commit_hash


class Evaluator:
    """One loaded model and lm-eval task index, evaluating cells."""

    def __init__(self, cfg: RunConfig, model: str, label: str, name: str, tasks_dir: Path, offline_only: bool,
                 folders: list[Path], tasks_wanted: list[str]):
        import torch  # loads torch: only when used
        from lm_eval.tasks import TaskManager  # loads lm-eval: only when used

        from occi.eval.model import load  # loads lm-eval: only when used

        device = cfg.eval.device if cfg.eval.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = cfg.eval.dtype if cfg.eval.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
        self.cfg, self.label, self.name = cfg, label, name
        _describe_environment_once()
        self.lm = load(model, device, dtype, cfg.eval.batch_size, cfg.eval.backend)
        # indexing only occi's folder takes 0.01 s instead of ~9 s for lm-eval's whole catalogue
        self.tasks = TaskManager(include_path=[str(tasks_dir), *map(str, folders)], include_defaults=False)
        if not offline_only and any(task not in self.tasks.task_index for task in tasks_wanted):
            self.tasks = TaskManager(include_path=[str(tasks_dir), *map(str, folders)], include_defaults=True)

    def run(self, cell: Cell, folder: Path) -> dict:
        if cell.family == "fidelity":
            return self.fidelity(cell, folder)
        from lm_eval import simple_evaluate  # loads lm-eval: only when used
        from lm_eval.loggers import EvaluationTracker  # loads lm-eval: only when used

        started = time.monotonic()
        tracker = EvaluationTracker(output_path=str(folder))
        generation = {}
        if cell.family == "ifeval":  # a chat model answers through its template; a base model continues the prompt
            generation = {"gen_kwargs": {"max_gen_toks": self.cfg.eval.ifeval_max_new_tokens},
                          "apply_chat_template": bool(getattr(getattr(self.lm, "tokenizer", None), "chat_template", None))}
        results = simple_evaluate(model=self.lm, tasks=[cell.task], num_fewshot=cell.num_fewshot,
                                  limit=self.cfg.eval.limit, task_manager=self.tasks, log_samples=True, **generation,
                                  evaluation_tracker=tracker, random_seed=self.cfg.seed,
                                  numpy_random_seed=self.cfg.seed, torch_random_seed=self.cfg.seed,
                                  fewshot_random_seed=self.cfg.seed)
        samples = results.pop("samples", {})
        # a model object leaves lm-eval without a name (it makes one up) for its results
        tracker.general_config_tracker.model_name = self.name
        tracker.general_config_tracker.model_name_sanitized = self.label
        tracker.save_results_aggregated(results=results, samples=samples)
        for task_name, task_samples in samples.items():
            tracker.save_results_samples(task_name=task_name, samples=task_samples)
        scores = results["results"][cell.task]
        stderr = scores.get(f"{cell.metric}_stderr,{cell.filter}")
        extra = {}
        if cell.family == "ifeval":  # the card's interval needs the count; instruction level is shown beside
            extra = {"answers": results["n-samples"][cell.task]["effective"],
                     "instruction_level": scores.get("inst_level_strict_acc,none")}
        return {"suite": cell.suite, "language": cell.language, "family": cell.family, "task": cell.task,
                "metric": cell.metric, "value": scores[f"{cell.metric},{cell.filter}"],
                "stderr": stderr if isinstance(stderr, (int, float)) else None,
                "num_fewshot": cell.num_fewshot, **extra, "seconds": round(time.monotonic() - started, 2)}


    def fidelity(self, cell: Cell, folder: Path) -> dict:
        """Answer-language fidelity (occi/eval/fidelity.py): generation, not an lm-eval task."""
        if not hasattr(self.lm, "tokenizer") or not hasattr(self.lm, "model"):
            raise OcciError("the fidelity suite needs a transformers model (a GGUF file cannot run it)")
        started = time.monotonic()
        if getattr(self, "identifier", None) is None:
            self.identifier = fidelity.identifier(self.cfg)
        settings = self.cfg.eval
        result = fidelity.measure(self.lm.model, self.lm.tokenizer, cell.language, self.identifier,
                                  settings.fidelity_max_new_tokens, settings.batch_size, settings.fidelity_max_prompts,
                                  getattr(self.lm, "generator", None), getattr(self.lm, "stop", ()))
        fidelity.write_results(folder, cell.task, self.name, self.label, result,
                               {"max_new_tokens": settings.fidelity_max_new_tokens, "do_sample": False,
                                "max_prompts": settings.fidelity_max_prompts, "backend": settings.backend})
        return {"suite": cell.suite, "language": cell.language, "family": cell.family, "task": cell.task,
                "metric": cell.metric, "value": result["value"], "stderr": result["stderr"],
                "interval": result["interval"], "num_fewshot": 0, "answers": len(result["samples"]),
                "seconds": round(time.monotonic() - started, 2)}


def _error_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:500]}" if text else type(err).__name__


def evaluate(cfg: RunConfig, run: RunDir, suites: list[str] | None = None, model: str | None = None,
             share: Share = Share(), progress: bool = True) -> dict:
    """Runs every cell not done yet (this share of them); returns the table of all cells.

    A GGUF file is evaluated in a child process, so a crash of llama.cpp becomes one line
    naming the file (occi/eval/crashguard.py)."""
    if model is not None and model.endswith(".gguf"):
        return run_in_child(model, _evaluate, cfg, RunDir.of(run), suites, model, share, progress)
    return _evaluate(cfg, run, suites, model, share, progress)


def _evaluate(cfg: RunConfig, run: RunDir, suites: list[str] | None, model: str | None, share: Share,
              progress: bool) -> dict:
    from tqdm import tqdm  # loads tqdm: only when used

    run = RunDir.of(run)
    own_model = model is None
    if own_model:
        if not (run.hf / "config.json").exists():
            raise OcciError(f"{run.hf}: no exported model; run `occi export` first or pass --model")
        model = str(run.hf)
    suites = suites or cfg.eval.suites
    for suite in suites:
        if suite not in SUITES:
            raise OcciError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    label = model_label(run, model)
    tasks_dir, unbuildable = tasks.prepare(cfg, run, heldout="offline" in suites)
    todo = []
    for suite in suites:
        for cell in share.mine(cells(suite, cfg.eval_languages, cfg.eval.num_fewshot, cfg.eval.families)):
            folder = cell_folder(run, label, cell)
            if not is_done(folder):
                todo.append((cell, folder))
    evaluator = None
    if any(cell.task not in unbuildable for cell, _ in todo):
        try:
            evaluator = Evaluator(cfg, model, label, display_name(cfg, run, model), tasks_dir,
                                  offline_only=suites == ["offline"], folders=tasks.task_folders(run),
                                  tasks_wanted=[cell.task for cell, _ in todo])
        except Exception as err:
            kind = "a GGUF file with llama-cpp-python" if model.endswith(".gguf") else "a transformers causal LM"
            raise OcciError(f"{model}: cannot load it as {kind}: {_error_line(err)}") from err
    for cell, folder in tqdm(todo, desc="eval", unit="cell", disable=not progress):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            if cell.task in unbuildable:
                raise OcciError(unbuildable[cell.task])
            atomic_write_json(folder / "cell.json", evaluator.run(cell, folder))
            mark_done(folder)
        except Exception as err:  # one unreachable dataset must not stop the other cells
            atomic_write_json(folder / "error.json", {"task": cell.task, "error": _error_line(err)})
    evaluated = [s for s in SUITES if s in suites or (run.eval / s / label).is_dir()]
    table = collect(run, label, evaluated, cfg.eval_languages, cfg.eval.num_fewshot, cfg.eval.families)
    if share.whole:
        atomic_write_json(run.eval_table(label), table)
        atomic_write_text(run.eval_table(label, "md"), format_table(table) + "\n")
        if own_model and all(c["state"] != "missing" for c in table["cells"] if c["suite"] in suites):
            mark_done(run.eval)
    return table


def own_table(run: RunDir) -> dict | None:
    """The evaluation table of the run's own model (<run>/hf), or None before it is evaluated."""
    known = registered_models(run)
    source = model_source(str(run.hf))
    # the label model_label() gave it, or the one it gives a model nothing else has claimed (a copied run)
    label = next((label for label, path in known.items() if path == source), None)
    if label is None and run.hf.name not in known:
        label = run.hf.name
    table = run.read_json(run.eval_table(label)) if label else None
    return table if table is not None else _stage_model_table(run, known)


def _stage_model_table(run: RunDir, known: dict[str, str]) -> dict | None:
    """The table of the stage model <run>/hf was exported from (the same stage and checkpoint),
    when eval.models evaluated that one rather than hf itself."""
    export = run.read_json(run.hf / "occi_export.json") or {}
    for label, source in known.items():
        made = run.read_json(Path(source) / "occi_export.json") or {}
        if (model_name_of(run, source) and export.get("stage") and made.get("stage") == export["stage"]
                and made.get("iteration") == export.get("iteration")):
            return run.read_json(run.eval_table(label))
    return None


def run(cfg: RunConfig, run: RunDir, share: Share = Share(), suite: str | None = None,
        model: str | None = None) -> StageResult:
    """The eval stage of the stage list (occi/pipeline.py); a run continued from a base model also
    evaluates the base on the same cells, for the card's side-by-side table."""

    suites = [suite] if suite else None
    summary = ""
    if model is None and cfg.eval.models:
        return _evaluate_named(cfg, RunDir.of(run), suites, share)
    if model is None and is_base_run(cfg):
        base = evaluate(cfg, run, suites=suites, model=str(resolve(cfg.model)), share=share)
        summary = f"base model:\n{format_table(base)}\n"
    table = evaluate(cfg, run, suites=suites, model=model, share=share)
    return StageResult(summary + format_table(table), complete=share.whole)


def _evaluate_named(cfg: RunConfig, run: RunDir, suites: list[str] | None, share: Share) -> StageResult:
    """eval.models: each named model of the run evaluated on the same cells; the stage is done
    when every one of them has every cell."""
    tables = {name: evaluate(cfg, run, suites=suites, model=str(named_model(cfg, run, name)), share=share)
              for name in cfg.eval.models}
    wanted = suites or cfg.eval.suites
    if share.whole and all(c["state"] != "missing" for table in tables.values() for c in table["cells"]
                           if c["suite"] in wanted):
        mark_done(run.eval)
    return StageResult("\n".join(f"{name}:\n{format_table(table)}" for name, table in tables.items()),
                       complete=share.whole)


def shard_count(cfg: RunConfig, run: RunDir) -> int:
    """SLURM array tasks: as many as the run evaluates languages."""
    return len(cfg.eval_languages)
