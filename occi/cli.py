"""The `occi` command line: each subcommand is a plain function of its parsed arguments.

A user error (OcciError) prints one line, `occi: error: ...`, and exits with code 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from occi.errors import OcciError


def _run_dir(args: argparse.Namespace, cfg) -> Path:
    from occi.config import default_run_dir

    return Path(args.run_dir) if args.run_dir else default_run_dir(cfg)


def cmd_run(args: argparse.Namespace) -> int:
    from occi import config, pipeline

    cfg = config.load(args.config)
    pipeline.run_all(cfg, _run_dir(args, cfg))
    return 0


def cmd_corpora_build(args: argparse.Namespace) -> int:
    from occi import config
    from occi.corpora import build, stats

    cfg = config.load(args.config)
    run_dir = _run_dir(args, cfg)
    config.write_resolved(cfg, run_dir)
    result = build.build(cfg.corpora, cfg.languages, run_dir, rank=args.rank, world_size=args.world_size,
                         phase=args.phase, workers=args.workers)
    if result is None:
        print(f"corpora: rank {args.rank} of {args.world_size} done; run with --phase dedup once all ranks are done")
    else:
        print(stats.format_table(result))
        print(f"corpora: {run_dir / 'corpora'}")
    return 0


def cmd_corpora_langid(args: argparse.Namespace) -> int:
    from occi import languages
    from occi.corpora.config import LangIdConfig
    from occi.corpora.langid import LanguageIdentifier, resolve_model

    codes = list(languages.LANGUAGES)
    model = resolve_model(LangIdConfig(model=args.model), base_dir=str(Path.cwd()))
    identifier = LanguageIdentifier(model, codes)
    out = sys.stdout
    for line in sys.stdin:
        text = line.rstrip("\n")
        if not text.strip():
            out.write("\t0.0000\n")
            continue
        code, score, top_label = identifier.predict(text)
        out.write(f"{code or top_label}\t{score:.4f}\n")
    return 0


def cmd_tokenizer_train(args: argparse.Namespace) -> int:
    from occi import config
    from occi.tokenizer import train

    cfg = config.load(args.config)
    run_dir = _run_dir(args, cfg)
    print(train.summary(train.train(cfg, run_dir)))
    print(f"tokenizer: {run_dir / 'tokenizer'}")
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


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from occi import config
    from occi.data import prepare

    cfg = config.load(args.config)
    run_dir = _run_dir(args, cfg)
    blend = prepare.prepare(cfg, run_dir, rank=args.rank, world_size=args.world_size)
    if blend is None:
        print(f"data: rank {args.rank} of {args.world_size} done; run without --rank once all ranks are done")
    else:
        print(prepare.format_blend(blend))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from occi import config
    from occi.eval import runner

    cfg = config.load(args.config)
    table = runner.evaluate(cfg, _run_dir(args, cfg), suites=[args.suite] if args.suite else None, model=args.model,
                            rank=args.rank, world_size=args.world_size)
    print(runner.format_table(table))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from occi.report import leaderboard

    board = leaderboard.read(args.results)
    for problem in board.problems:
        print(f"occi: warning: {problem}", file=sys.stderr)
    if not board.cells:
        raise OcciError("no usable lm-eval results in " + ", ".join(args.results))
    summary = leaderboard.summarize(board)
    leaderboard.write(summary, Path(args.out))
    print(leaderboard.markdown(summary).split("\n\nPer benchmark")[0])
    print(f"leaderboard: {Path(args.out)}/leaderboard.{{md,csv,json,html,png}}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from occi import config
    from occi.report import card, publish

    cfg = config.load(args.config)
    run_dir = _run_dir(args, cfg)
    path = card.write_card(cfg, run_dir, Path(args.out) if args.out else None, repo_id=args.push)
    print(f"card: {path}")
    if args.push:
        files = publish.upload_plan(run_dir, path)
        if args.dry_run:
            print(publish.format_plan(args.push, files))
        else:
            print(f"card: uploaded to {publish.push(args.push, files)}")
    return 0


def cmd_slurm_submit(args: argparse.Namespace) -> int:
    from occi import config
    from occi.slurm import submit

    cfg = config.load(args.config)
    result = submit.submit(cfg, _run_dir(args, cfg), args.cluster, dry_run=args.dry_run, chain=args.chain)
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


def cmd_train(args: argparse.Namespace) -> int:
    from occi import config
    from occi.train import launch

    cfg = config.load(args.config)
    summary = launch.train(cfg, _run_dir(args, cfg))
    state = "complete" if summary["complete"] else "stopped early; run the same command to continue"
    if os.environ.get("RANK", "0") == "0":  # one line per launch, not per rank
        print(f"train: step {summary['steps']}/{summary['target_steps']} ({state})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from occi import config
    from occi.train import export

    cfg = config.load(args.config)
    out = export.export(cfg, _run_dir(args, cfg))
    print(f"export: transformers model written to {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from occi import config
    from occi.train import hf_import

    cfg = config.load(args.config)
    print(hf_import.run(cfg, _run_dir(args, cfg)))
    return 0


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="run config: a YAML path or a shipped name (e.g. demo)")
    parser.add_argument("--run-dir", metavar="DIR", help="where the run's stages write (default: runs/<name>)")


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

    corpora = commands.add_parser("corpora", help="build language-filtered, deduplicated corpora")
    corpora_commands = corpora.add_subparsers(dest="corpora_command", metavar="COMMAND", required=True)
    build = corpora_commands.add_parser("build", help="read, filter and deduplicate the run's sources")
    _add_run_dir(build)
    build.add_argument("--rank", type=int, default=0, help="this process's share of shards (SLURM arrays)")
    build.add_argument("--world-size", type=int, default=1, help="number of ranks sharing the shards")
    build.add_argument("--phase", choices=["all", "filter", "dedup"], default="all",
                       help="filter: only this rank's shards; dedup: only the final cross-shard step")
    build.add_argument("--workers", type=int, default=None, help="worker processes (default: the recipe's)")
    build.set_defaults(func=cmd_corpora_build)
    langid = corpora_commands.add_parser("langid", help="stdin lines -> 'lang<TAB>score'")
    langid.add_argument("--model", default=None, help="fastText model path or URL (default: lid.176.ftz)")
    langid.set_defaults(func=cmd_corpora_langid)
    tokenizer = commands.add_parser("tokenizer", help="the shared SentencePiece tokenizer and its report")
    tokenizer_commands = tokenizer.add_subparsers(dest="tokenizer_command", metavar="COMMAND", required=True)
    train_tok = tokenizer_commands.add_parser("train", help="sample the corpora, train SentencePiece, write HF files + report")
    _add_run_dir(train_tok)
    train_tok.set_defaults(func=cmd_tokenizer_train)
    evaluate = tokenizer_commands.add_parser("eval", help="fertility, parity and more per language, beside references")
    evaluate.add_argument("--tokenizer", required=True, help="a tokenizer folder, .model, tokenizer.json or reference name")
    evaluate.add_argument("--text", action="append", required=True, metavar="LANG=FILE", help="held-out text of a language")
    evaluate.add_argument("--reference", action="append", default=[], metavar="NAME",
                          help="mistral-32k, tekken-131k, or a tokenizer path (repeatable)")
    evaluate.add_argument("--parallel", action="store_true", help="the texts are translations: report parity vs en")
    evaluate.add_argument("--json", action="store_true", help="print report.json instead of the table")
    evaluate.add_argument("--out", metavar="DIR", help="also write report.json, report.md and fertility.png here")
    evaluate.set_defaults(func=cmd_tokenizer_eval)

    data = commands.add_parser("data", help="tokenize the corpora into megatron indexed datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    prepare = data_commands.add_parser("prepare", help="corpora -> data/<lang>_text_document.{bin,idx} + blend.json")
    _add_run_dir(prepare)
    prepare.add_argument("--rank", type=int, default=0, help="this process's share of languages (SLURM arrays)")
    prepare.add_argument("--world-size", type=int, default=1, help="ranks sharing the languages; the blend is "
                         "written by a run without --world-size once every rank is done")
    prepare.set_defaults(func=cmd_data_prepare)

    train = commands.add_parser("train", help="megatron-core pretraining (launches torchrun, or runs as one rank)")
    _add_run_dir(train)
    train.set_defaults(func=cmd_train)

    import_base = commands.add_parser("import", help="an open HF base model -> checkpoints/iter_0000000 (model: {base: ...})")
    _add_run_dir(import_base)
    import_base.set_defaults(func=cmd_import)

    export = commands.add_parser("export", help="latest checkpoint -> transformers LlamaForCausalLM in <run>/hf")
    _add_run_dir(export)
    export.set_defaults(func=cmd_export)

    evaluate_model = commands.add_parser("eval", help="per-language lm-eval benchmarks of the run's model (or any)")
    _add_run_dir(evaluate_model)
    evaluate_model.add_argument("--suite", choices=["offline", "eu-leaderboard"], help="one suite (default: the config's)")
    evaluate_model.add_argument("--model", metavar="PATH_OR_HF_ID", help="evaluate this model instead of <run>/hf")
    evaluate_model.add_argument("--rank", type=int, default=0, help="this process's share of cells (SLURM arrays)")
    evaluate_model.add_argument("--world-size", type=int, default=1, help="ranks sharing the cells")
    evaluate_model.set_defaults(func=cmd_eval)

    board = commands.add_parser("leaderboard", help="models x languages x benchmarks from lm-eval results")
    board.add_argument("results", nargs="+", metavar="RESULTS", help="results JSON files or folders, optionally NAME=PATH")
    board.add_argument("--out", required=True, metavar="DIR", help="where leaderboard.{md,csv,json,html,png} go")
    board.set_defaults(func=cmd_leaderboard)

    card = commands.add_parser("card", help="write the model card (and publish the model with --push)")
    _add_run_dir(card)
    card.add_argument("--out", metavar="FILE", help="where to write the card (default: <run>/report/MODEL_CARD.md)")
    card.add_argument("--push", metavar="REPO", help="upload hf/ and the card to this Hugging Face model repository")
    card.add_argument("--dry-run", action="store_true", help="with --push: list what would be uploaded, upload nothing")
    card.set_defaults(func=cmd_card)

    slurm = commands.add_parser("slurm", help="run the pipeline as SLURM jobs")
    slurm_commands = slurm.add_subparsers(dest="slurm_command", metavar="COMMAND", required=True)
    submit = slurm_commands.add_parser("submit", help="render one sbatch script per step and submit the chain")
    _add_run_dir(submit)
    submit.add_argument("--cluster", required=True, help="a profile under slurm/clusters/ (or a YAML path)")
    submit.add_argument("--dry-run", action="store_true", help="write the scripts and print the plan only")
    submit.add_argument("--chain", type=int, default=1, help="training as a chain of this many jobs (--array=0-K%%1)")
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
    except KeyboardInterrupt:
        print("occi: interrupted; completed work is kept, re-run the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
