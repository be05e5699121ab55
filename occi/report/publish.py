"""`occi card --push REPO`: upload the exported model, its tokenizer, the card, the GGUF files and
the leaderboard to the Hub.

The token comes from HF_TOKEN or the saved `huggingface-cli login`; it is handed to
huggingface_hub and never printed or written. --dry-run lists exactly what would be uploaded.
Only files whose content differs from the repository's (compared by the hub's LFS sha256 or git
blob id) are uploaded, in one commit: a second push uploads what changed, and a push interrupted
midway (nothing committed) uploads the rest when run again.
"""
from __future__ import annotations

import os
from pathlib import Path

from occi.errors import OcciError
from occi.hub import is_offline
from occi.preflight.integrity import git_blob_id, sha256_of
from occi.rundir import RunDir

_SKIPPED = {"_DONE"}
_LEADERBOARD = ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html", "leaderboard.png")


def upload_plan(run_dir: Path, card: Path) -> list[tuple[str, Path]]:
    """(path in the repository, local file) for everything that would be uploaded."""
    run = RunDir.of(run_dir)
    hf = run.hf
    if not (hf / "config.json").exists():
        raise OcciError(f"{hf}: no exported model; run `occi export` first")
    files = [(item.name, item) for item in sorted(hf.iterdir()) if item.is_file() and item.name not in _SKIPPED]
    files.append(("README.md", card))
    for name in ("loss_curve.png", "answer_language_fidelity.png", "expert_load.png",  # the pictures the card shows
                 "training-content-summary.md", "training-content-summary.json"):  # and the summary it links
        picture = card.parent / name
        if picture.exists():
            files.append((name, picture))
    if run.gguf.is_dir():  # `occi export --format gguf`: the files, their Modelfiles and manifest.json
        files += [(f"gguf/{item.name}", item) for item in sorted(run.gguf.iterdir())
                  if item.is_file() and item.name not in _SKIPPED and not item.name.startswith(".")]
    files += [(f"leaderboard/{name}", run.report / name) for name in _LEADERBOARD if (run.report / name).exists()]
    return files


def _endpoint() -> str:
    from huggingface_hub import constants  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

    return constants.ENDPOINT.rstrip("/")


def format_plan(repo_id: str, files: list[tuple[str, Path]], unchanged: set[str] | None = None) -> str:
    todo = [(name, path) for name, path in files if name not in (unchanged or set())]
    total = sum(path.stat().st_size for _, path in todo)
    lines = [f"would upload to {_endpoint()}/{repo_id} ({len(todo)} files, {total / 1e6:.2f} MB"
             + (f"; {len(files) - len(todo)} unchanged there" if unchanged else "") + "):"]
    lines += [f"  {name:<28} {path.stat().st_size:>14,} bytes" for name, path in todo]
    return "\n".join(lines)


def unchanged_files(repo_id: str, files: list[tuple[str, Path]], token: str | None = None) -> set[str]:
    """The files the repository already holds with the same content (none when it does not exist)."""
    from huggingface_hub import HfApi  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it
    from huggingface_hub.hf_api import RepoFile  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it


    try:
        remote = {entry.path: entry for entry in HfApi(token=token).list_repo_tree(repo_id, recursive=True, revision="main")
                  if isinstance(entry, RepoFile)}
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return set()
    same = set()
    for name, path in files:
        entry = remote.get(name)
        if entry is None or entry.size != path.stat().st_size:
            continue
        if entry.lfs is not None and entry.lfs.sha256 == sha256_of(path):
            same.add(name)
        elif entry.lfs is None and entry.blob_id == git_blob_id(path):
            same.add(name)
    return same


def dry_run(repo_id: str, files: list[tuple[str, Path]]) -> str:
    """The plan, with what the repository already holds left out when it can be read."""
    if is_offline():
        return format_plan(repo_id, files) + "\n(HF_HUB_OFFLINE is set: the repository was not compared, every file listed)"
    try:
        unchanged = unchanged_files(repo_id, files, os.environ.get("HF_TOKEN") or None)
    except Exception as err:  # offline or unreachable: list everything, say why
        return format_plan(repo_id, files) + f"\n(the repository could not be read, {type(err).__name__}: every file listed)"
    return format_plan(repo_id, files, unchanged)


def push(repo_id: str, files: list[tuple[str, Path]], private: bool = False) -> str:
    """Creates the model repository if needed and uploads the changed files in one commit; returns
    its URL (or says that nothing changed)."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise OcciError("no Hugging Face token: set HF_TOKEN or run `huggingface-cli login`, then push again")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        unchanged = unchanged_files(repo_id, files, token)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path))
                      for name, path in files if name not in unchanged]
        if not operations:
            return f"{_endpoint()}/{repo_id} (nothing changed: all {len(files)} files are there)"
        commit = api.create_commit(repo_id, operations=operations, repo_type="model",
                                   commit_message=f"Upload {len(operations)} changed file(s) from occi")
    except Exception as err:  # network, auth and hub errors come in many types
        message = str(err).replace(token, "***").splitlines()[0][:300] if str(err) else type(err).__name__
        raise OcciError(f"upload to {repo_id} failed ({type(err).__name__}: {message}); "
                        "check the network, the repository name and that the token may write to it") from None
    return getattr(commit, "commit_url", f"{_endpoint()}/{repo_id}")
