"""`occi card --push REPO`: upload the exported model, its tokenizer and the card to the Hub.

The token comes from HF_TOKEN or the saved `huggingface-cli login`; it is handed to
huggingface_hub and never printed or written. --dry-run lists exactly what would be uploaded.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from occi.errors import OcciError
from occi.rundir import RunDir

_SKIPPED = {"_DONE"}


def upload_plan(run_dir: Path, card: Path) -> list[tuple[str, Path]]:
    """(path in the repository, local file) for everything that would be uploaded."""
    hf = RunDir.of(run_dir).hf
    if not (hf / "config.json").exists():
        raise OcciError(f"{hf}: no exported model; run `occi export` first")
    files = [(item.name, item) for item in sorted(hf.iterdir()) if item.is_file() and item.name not in _SKIPPED]
    files.append(("README.md", card))
    for name in ("loss_curve.png", "answer_language_fidelity.png", "expert_load.png",  # the pictures the card shows
                 "training-content-summary.md", "training-content-summary.json"):  # and the summary it links
        picture = card.parent / name
        if picture.exists():
            files.append((name, picture))
    return files


def format_plan(repo_id: str, files: list[tuple[str, Path]]) -> str:
    total = sum(path.stat().st_size for _, path in files)
    lines = [f"would upload to https://huggingface.co/{repo_id} ({len(files)} files, {total / 1e6:.2f} MB):"]
    lines += [f"  {name:<28} {path.stat().st_size:>14,} bytes" for name, path in files]
    return "\n".join(lines)


def push(repo_id: str, files: list[tuple[str, Path]], private: bool = False) -> str:
    """Creates the model repository if needed and uploads the files in one commit; returns its URL."""
    from huggingface_hub import HfApi, get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise OcciError("no Hugging Face token: set HF_TOKEN or run `huggingface-cli login`, then push again")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="occi-push-") as staging:
        for name, path in files:
            shutil.copy2(path, Path(staging) / name)
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(folder_path=staging, repo_id=repo_id, repo_type="model",
                                       commit_message="Upload model, tokenizer and card from occi")
        except Exception as err:  # network, auth and hub errors come in many types
            message = str(err).replace(token, "***").splitlines()[0][:300] if str(err) else type(err).__name__
            raise OcciError(f"upload to {repo_id} failed ({type(err).__name__}: {message}); "
                            "check the network, the repository name and that the token may write to it") from None
    return getattr(commit, "commit_url", f"https://huggingface.co/{repo_id}")
