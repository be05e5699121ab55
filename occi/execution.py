"""Running the stages of the stage list (occi/pipeline.py): one stage with what surrounds it (the
run's lock for the stages that need it, the provenance line, the energy meter of device jobs),
and every stage in order, as `occi run` does."""
from __future__ import annotations

import importlib
import resource
import time
from pathlib import Path

from occi import energy, provenance, runlock
from occi.errors import OcciError
from occi.hub import is_offline
from occi import pipeline
from occi.pipeline import Stage, StageResult, stages_of
from occi.preflight.manifest import check_fetched
from occi.rundir import RunDir
from occi.sharding import Share


def run_stage(stage: Stage, cfg, run: RunDir, share: Share = Share(), **options) -> StageResult:
    """One stage's work, holding the run's lock when the stage is exclusive."""
    if stage.exclusive:
        with runlock.hold(run, " ".join(("occi", *stage.command))):
            return _run(stage, cfg, run, share, **options)
    return _run(stage, cfg, run, share, **options)


def _run(stage: Stage, cfg, run: RunDir, share: Share, **options) -> StageResult:
    module = importlib.import_module(stage.module)
    if stage.name != "report":  # the card describes the model; writing it is not part of making it
        provenance.record(RunDir.of(run).provenance, stage.name)
    if stage.slurm == "cpu":
        return module.run(cfg, run, share, **options)
    with energy.meter(RunDir.of(run).energy, stage.name):  # device jobs record their hours and energy
        return module.run(cfg, run, share, **options)


def peak_memory_mb() -> float:
    """Peak resident memory of this process and of its finished children (torchrun ranks), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def run_all(cfg, run: RunDir) -> None:
    """Runs the stages in order, holding the run's lock; a completed stage is reported and skipped."""
    with runlock.hold(run, f"occi run {cfg.name}"):
        _run_stages(cfg, run)


def _run_stages(cfg, run: RunDir) -> None:
    started_run = time.monotonic()
    if is_offline():  # what was not fetched stops the run before any work, not in its third stage
        check_fetched(cfg, run)
    stages = stages_of(cfg)
    print(f"occi run {cfg.name}: {len(stages)} stages, run directory {run.root}", flush=True)
    for number, stage in enumerate(stages, 1):
        prefix = f"[{number}/{len(stages)}] {stage.name}"
        folder = run.stage_folder(stage.name)
        if run.is_done(stage.name):
            print(f"{prefix}: already done ({folder})", flush=True)
            continue
        print(f"{prefix}: running", flush=True)
        started = time.monotonic()
        result = run_stage(stage, cfg, run)
        print(result.summary)
        if not result.complete:
            raise OcciError(f"the {stage.name} stage stopped before completing; run the same command again to continue")
        print(f"{prefix}: done in {time.monotonic() - started:.1f} s -> {folder}", flush=True)
    print(f"\nocci run {cfg.name}: all stages done in {time.monotonic() - started_run:.1f} s, "
          f"peak memory {peak_memory_mb():,.0f} MB")
    for label, path in results(run):
        print(f"  {label:<18} {path}")


def results(run: RunDir) -> list[tuple[str, Path]]:
    """Where a run's results are, as the stages declare them, for the final summary (those that exist)."""
    candidates = [(label, run.named(name)) for stage in pipeline.STAGES for label, name in stage.results]
    return [(label, path) for label, path in candidates if path.exists()]
