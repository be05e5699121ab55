"""The `occi` command line: each subcommand is a plain function of its parsed arguments.

A user error (OcciError) prints one line, `occi: error: ...`, and exits with code 2. Each subcommand
imports its modules when it runs (function-local imports), so `occi --help` and every command load
only what they use.
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from occi import ranges
from occi.errors import OcciError


_COUNT = ranges.argument(ranges.at_least(0))
_POSITIVE = ranges.argument(ranges.at_least(1))


def _load(args: argparse.Namespace):
    """The run's frozen config and its run directory (occi/config.py: load_for_run)."""
    from occi import config

    return config.load_for_run(args.config, args.run_dir, reconfigure=args.reconfigure)


def cmd_run(args: argparse.Namespace) -> int:
    from occi import execution

    execution.run_all(*_load(args))
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    """Any stage's own command (`occi corpora build`, `occi train`, ...): made from the stage list."""
    from occi.execution import run_stage
    from occi.pipeline import stage_named
    from occi.sharding import Share

    stage = stage_named(args.stage)
    cfg, run = _load(args)
    share = Share(args.rank, args.world_size) if stage.sharded else Share()
    result = run_stage(stage, cfg, run, share, **{option.dest: getattr(args, option.dest) for option in stage.options})
    if os.environ.get("RANK", "0") == "0":  # one summary per launch, not one per training rank
        print(result.summary)
    return 0


def cmd_corpora_langid(args: argparse.Namespace) -> int:
    from occi import languages
    from occi.corpora.config import LangIdConfig
    from occi.corpora.langid import LanguageIdentifier

    codes = list(languages.LANGUAGES)
    langid = LangIdConfig(model=args.model, backend=args.backend)
    identifier = LanguageIdentifier.from_config(langid, codes, base_dir=str(Path.cwd()))
    out = sys.stdout
    for raw in sys.stdin.buffer:  # lines end at "\n" only; bytes that are not UTF-8 become U+FFFD
        text = raw.rstrip(b"\n").decode("utf-8", "replace")
        if not text.strip():
            out.write("\t0.0000\n")
            continue
        code, score, top_label = identifier.predict(text)
        out.write(f"{code or top_label}\t{score:.4f}\n")
    return 0


def cmd_tokenizer_eval(args: argparse.Namespace) -> int:
    import json

    from occi.tokenizer import models, report

    tokenizers = [models.load(spec) for spec in [args.tokenizer, *args.reference]]
    result = report.evaluate(tokenizers, report.read_texts(args.text), parallel=args.parallel)
    if args.out:
        report.write(result, Path(args.out))
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else report.markdown(result))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from occi.report import leaderboard

    board = leaderboard.read(args.results)
    for problem in board.problems:
        print(f"occi: warning: {problem}", file=sys.stderr)
    if not board.cells:
        raise OcciError("no usable lm-eval results in " + ", ".join(args.results))
    if args.published is not None:
        from occi.report import published

        for line in published.place(board, published.read_tables(Path(args.published) if args.published else None)):
            print(f"occi: published: {line}", file=sys.stderr)
    compare = [name.strip() for name in args.side_by_side.split(",") if name.strip()] if args.side_by_side else None
    summary = leaderboard.summarize(board, min_shared=args.min_shared, compare=compare)
    text = leaderboard.write(summary, Path(args.out), draw_aside=True)
    print(text.split("\n\nPer benchmark")[0])
    print(f"leaderboard: {Path(args.out)}/leaderboard.{{md,csv,json,html,png}}")
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    from occi import languages
    from occi.eval import coverage

    codes = [languages.get(code).code for code in args.languages.split(",")] if args.languages else None
    print(coverage.markdown(codes))
    if args.png:
        print(f"plot: {coverage.plot(Path(args.png), codes)}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from occi import config
    from occi.rundir import RunDir
    from occi.slurm import estimate

    cfg = config.load(args.config)  # a plan does not start the run (no frozen config)
    run = RunDir(Path(args.run_dir) if args.run_dir else config.default_run_dir(cfg))
    result = estimate.plan(cfg, run, args.cluster, mfu=args.mfu)
    print(estimate.format_plan(result))
    print(f"plan: {run.plan}, memory per GPU drawn in {run.plan_memory_png}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from occi.preflight import fetch

    cfg, run = _load(args)
    fetch.fetch(cfg, run, cluster=args.cluster, dry_run=args.dry_run)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import json

    from occi.chat.generate import generate

    cfg, run = _load(args)
    result, used = generate(cfg, run, args.prompt, language=args.language, model=args.model, system=args.system,
                            max_new_tokens=args.max_new_tokens, min_thinking_tokens=args.min_thinking_tokens,
                            max_thinking_tokens=args.max_thinking_tokens, temperature=args.temperature,
                            top_p=args.top_p, device=args.device, backend=args.backend)
    if args.json:
        print(json.dumps({**used, **vars(result)}, ensure_ascii=False, indent=2))
    elif result.thinking is not None:
        print(f"<think>\n{result.thinking}\n</think>\n{result.answer}")
    else:
        print(result.answer)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from occi.preflight import doctor

    cfg, run = _load(args)
    report = doctor.doctor(cfg, run, cluster=args.cluster, quick=args.quick)
    return 1 if report["failed"] else 0


def cmd_slurm_submit(args: argparse.Namespace) -> int:
    from occi.slurm import submit

    cfg, run = _load(args)
    result = submit.submit(cfg, run, args.cluster, dry_run=args.dry_run, chain=args.chain, doctor=args.doctor)
    print(submit.format_plan(result))
    return 0


def cmd_slurm_status(args: argparse.Namespace) -> int:
    from occi.slurm import status

    steps = status.status(Path(args.run_dir))
    print(status.format_status(Path(args.run_dir), steps))
    return 1 if any(s["state"] == "FAILED" for s in steps) else 0


def cmd_slurm_cancel(args: argparse.Namespace) -> int:
    from occi.slurm import status

    ids = status.cancel(Path(args.run_dir))
    print(f"cancelled jobs: {' '.join(ids) or 'none'}")
    return 0


def _add_stage_commands(commands, group_commands: dict) -> None:
    """One subcommand per stage of the stage list, with --rank/--world-size where its work is sharded."""
    from occi.pipeline import STAGES

    for stage in STAGES:
        *group, word = stage.command
        if group and group[0] not in group_commands:
            holder = commands.add_parser(group[0], help=f"the {stage.name} stage")
            group_commands[group[0]] = holder.add_subparsers(dest=f"{group[0]}_command", metavar="COMMAND", required=True)
        parent = group_commands[group[0]] if group else commands
        parser = parent.add_parser(word, help=stage.help)
        _add_run_dir(parser)
        if stage.sharded:
            parser.add_argument("--rank", type=_COUNT, default=0, help=f"this process's share of the {stage.shards_over} "
                                "(SLURM arrays)")
            parser.add_argument("--world-size", type=_POSITIVE, default=1, help=f"processes sharing the {stage.shards_over}; "
                                "run once more without --rank when all are done, to join them")
        for option in stage.options:
            if option.is_flag:
                parser.add_argument(option.flag, action="store_true", help=option.help)
            else:
                parser.add_argument(option.flag, default=option.default, type=option.type, choices=option.choices,
                                    help=option.help)
        parser.set_defaults(func=cmd_stage, stage=stage.name)


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="run config: a YAML path or a shipped name (e.g. demo)")
    parser.add_argument("--run-dir", metavar="DIR", help="where the run's stages write (default: runs/<name>)")
    parser.add_argument("--reconfigure", action="store_true",
                        help="apply a changed CONFIG to an existing run on purpose (recorded in config-changes.log)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occi", description="Train and evaluate open LLMs for the EU languages.")
    try:
        parser.add_argument("--version", action="version", version=f"occi {version('occi')}")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled checkout
        pass
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run every stage in order, skipping completed ones")
    _add_run_dir(run)
    run.set_defaults(func=cmd_run)
    groups = {
        "corpora": commands.add_parser("corpora", help="build language-filtered, deduplicated corpora"),
        "tokenizer": commands.add_parser("tokenizer", help="the shared SentencePiece tokenizer and its report"),
        "data": commands.add_parser("data", help="tokenize the corpora into megatron indexed datasets"),
    }
    group_commands = {name: parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
                      for name, parser in groups.items()}
    _add_stage_commands(commands, group_commands)

    langid = group_commands["corpora"].add_parser("langid", help="stdin lines -> 'lang<TAB>score'")
    langid.add_argument("--model", default=None, help="fastText model path or URL (default: lid.176.ftz)")
    langid.add_argument("--backend", choices=["fasttext", "heliport"], default="fasttext",
                        help="language identifier (default: fasttext)")
    langid.set_defaults(func=cmd_corpora_langid)
    evaluate = group_commands["tokenizer"].add_parser("eval", help="fertility, parity and more per language, beside references")
    evaluate.add_argument("--tokenizer", required=True, help="a tokenizer folder, .model, tokenizer.json or reference name")
    evaluate.add_argument("--text", action="append", required=True, metavar="LANG=FILE", help="held-out text of a language")
    evaluate.add_argument("--reference", action="append", default=[], metavar="NAME",
                          help="mistral-32k, tekken-131k, or a tokenizer path (repeatable)")
    evaluate.add_argument("--parallel", action="store_true", help="the texts are translations: report parity vs en")
    evaluate.add_argument("--json", action="store_true", help="print report.json instead of the table")
    evaluate.add_argument("--out", metavar="DIR", help="also write report.json, report.md and fertility.png here")
    evaluate.set_defaults(func=cmd_tokenizer_eval)

    fetch = commands.add_parser("fetch", help="download what the run reads from the hub (login node) + fetch.json")
    _add_run_dir(fetch)
    fetch.add_argument("--cluster", help="put it into this cluster profile's cache (its env HF_HOME)")
    fetch.add_argument("--dry-run", action="store_true", help="list the items and sizes, download nothing")
    fetch.set_defaults(func=cmd_fetch)
    doctor = commands.add_parser("doctor", help="check this node for the run: versions, GPUs, bandwidth, I/O, "
                                 "hub, a tiny training; doctor.json; exit 1 when the run would break")
    _add_run_dir(doctor)
    doctor.add_argument("--cluster", help="also check what this cluster profile assumes (cores, GPUs, network)")
    doctor.add_argument("--quick", action="store_true", help="skip the training checks (tiny run, throughput)")
    doctor.set_defaults(func=cmd_doctor)

    plan = commands.add_parser("plan", help="estimate GPU-hours, wall time, energy, cost and peak memory per GPU of the run on a cluster")
    plan.add_argument("config", metavar="CONFIG", help="run config: a YAML path or a shipped name (e.g. demo)")
    plan.add_argument("--run-dir", metavar="DIR", help="the run directory (default: runs/<name>); plan.json goes there")
    plan.add_argument("--cluster", required=True, help="a profile under slurm/clusters/ (or a YAML path)")
    plan.add_argument("--mfu", type=ranges.argument(ranges.Range(0, 1, low_open=True)), metavar="FRACTION",
                      help="model FLOPs utilisation to assume (default: measured by this run, else 0.35)")
    plan.set_defaults(func=cmd_plan)

    generate = commands.add_parser("generate", help="one answer from the run's model (or --model) through its chat "
                                   "template, with s1 budget forcing for reasoning models")
    _add_run_dir(generate)
    generate.add_argument("--prompt", required=True, help="the user message")
    generate.add_argument("--language", help="the prompt's language code (default: read by language ID); picks "
                          "the continuation word of --min-thinking-tokens")
    generate.add_argument("--model", help="a model folder or hub id (default: the run's hf/)")
    generate.add_argument("--system", help="a system message")
    generate.add_argument("--max-new-tokens", type=_POSITIVE, default=256, help="most tokens written (default 256)")
    generate.add_argument("--min-thinking-tokens", type=_COUNT, metavar="N", help="when the model ends its thinking "
                          "(</think> or EOS) before N tokens, drop it, append 'Wait' in the prompt's language, go on")
    generate.add_argument("--max-thinking-tokens", type=_COUNT, metavar="N", help="at N thinking tokens force "
                          "</think> and let the answer follow")
    generate.add_argument("--temperature", type=ranges.argument(ranges.at_least(0.0), float), default=0.0,
                          help="sampling temperature (default 0: greedy)")
    generate.add_argument("--top-p", type=ranges.argument(ranges.Range(0.0, 1.0, low_open=True), float), default=1.0,
                          help="nucleus sampling mass (with --temperature above 0)")
    generate.add_argument("--device", default="auto", help="cpu, cuda, cuda:N (default: cuda when available)")
    generate.add_argument("--backend", choices=("transformers", "vllm"), default="transformers",
                          help="transformers (default) or vllm (see docs/chat.md; no budget forcing)")
    generate.add_argument("--json", action="store_true", help="print the answer, thinking and counts as JSON")
    generate.set_defaults(func=cmd_generate)

    board = commands.add_parser("leaderboard", help="models x languages x benchmarks from lm-eval results")
    board.add_argument("results", nargs="+", metavar="RESULTS", help="results JSON files or folders, optionally NAME=PATH")
    board.add_argument("--out", required=True, metavar="DIR", help="where leaderboard.{md,csv,json,html,png} go")
    board.add_argument("--published", nargs="?", const="", default=None, metavar="DIR",
                       help="also place published results of public models (eval/published/, or this folder of "
                       "YAML tables) where task, few-shot setting and metric match")
    board.add_argument("--min-shared", type=_POSITIVE, default=3, metavar="N",
                       help="rank only when the models share at least N cells (benchmark x language; default 3)")
    board.add_argument("--side-by-side", metavar="MODELS", help="comma-separated model names (base,sft,dpo,merged) "
                       "shown in one column each per language and benchmark")
    board.set_defaults(func=cmd_leaderboard)

    cover = commands.add_parser("coverage", help="benchmark families per language (lm-eval and occi's), and the gaps")
    cover.add_argument("--languages", metavar="CODES", help="comma-separated ISO 639-1 codes (default: all)")
    cover.add_argument("--png", metavar="FILE", help="also draw the languages x families grid")
    cover.set_defaults(func=cmd_coverage)

    slurm = commands.add_parser("slurm", help="run the pipeline as SLURM jobs")
    slurm_commands = slurm.add_subparsers(dest="slurm_command", metavar="COMMAND", required=True)
    submit = slurm_commands.add_parser("submit", help="render one sbatch script per step and submit the chain")
    _add_run_dir(submit)
    submit.add_argument("--cluster", required=True, help="a profile under slurm/clusters/ (or a YAML path)")
    submit.add_argument("--dry-run", action="store_true", help="write the scripts and print the plan only")
    submit.add_argument("--chain", type=_POSITIVE, default=1, help="training as a chain of this many jobs (--array=0-K%%1)")
    submit.add_argument("--doctor", action="store_true", help="run `occi doctor` on one node first; the chain "
                        "waits for it, so a broken allocation fails in minutes")
    submit.set_defaults(func=cmd_slurm_submit)
    status = slurm_commands.add_parser("status", help="per step: job ids, state, elapsed, log, failures")
    status.add_argument("run_dir", metavar="RUN_DIR")
    status.set_defaults(func=cmd_slurm_status)
    cancel = slurm_commands.add_parser("cancel", help="cancel the run's queued and running jobs")
    cancel.add_argument("run_dir", metavar="RUN_DIR")
    cancel.set_defaults(func=cmd_slurm_cancel)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except OcciError as err:
        print(f"occi: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only run directory, a full disk, a file where a folder should be
        where = f"{err.filename}: " if err.filename else ""
        print(f"occi: error: {where}{err.strerror or err}; check the path and its permissions and free space",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("occi: interrupted; completed work is kept, re-run the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
