"""A Hugging Face hub-compatible server on 127.0.0.1 for the tests: olah (PyPI `olah`), serving
git repositories made here in the hub's layout from its local-mirror folders, and a plain
http.server for files given by URL.

Why olah: of the two servers on PyPI, hf-local-hub's wheel is a thin client of a Go binary that
is not in the wheel; olah is pure Python and, for a git repository in its mirror folder
(<mirrors>/<models|datasets>/<org>/<name>, LFS files as pointers with their objects under
.git/lfs/objects), answers what huggingface_hub and `datasets` call: repository info at a
revision (/api/<type>s/<repo>/revision/<rev>), the tree with sizes and LFS sha256
(list_repo_tree, get_paths_info), /resolve/ downloads with ETag and X-Repo-Commit, HEAD
requests, and so HfFileSystem and `hf://` data files. What it lacks: repository info without a
revision (/api/<type>s/<repo>, which HfFileSystem asks first): in its offline mode olah looks
for the newest commit only in its proxy cache, so `_LAUNCH` below makes that lookup answer with
a mirror's HEAD, as the hub answers with the default branch (occi itself asks for revision
`main`); and every write call (create_repo, preupload, commit, LFS batch): no server on PyPI
implements the upload API.
"""
from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

LFS_SUFFIXES = (".parquet", ".safetensors", ".bin", ".ftz", ".arrow")
"""Files the hub keeps in LFS (as its default .gitattributes does); the others are plain git blobs."""


_LAUNCH = """
import os, runpy, subprocess, sys
import olah.utils.repo_utils as repo_utils
mirrors = sys.argv.pop(1)
cached_only = repo_utils.get_newest_commit_hf_offline
async def newest_commit(app, repo_type, org, repo):
    folder = os.path.join(mirrors, repo_type, org or "", repo)
    if os.path.isdir(os.path.join(folder, ".git")):
        return subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return await cached_only(app, repo_type, org, repo)
repo_utils.get_newest_commit_hf_offline = newest_commit
sys.argv[0] = "olah"
runpy.run_module("olah.server", run_name="__main__")
"""
"""olah's server, with the newest commit of a mirrored repository read from its git HEAD."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubRepos:
    """Git repositories in olah's mirror layout, written as the hub stores them."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self, repo_type: str, repo_id: str) -> Path:
        return self.root / f"{repo_type}s" / repo_id

    def commit(self, repo_type: str, repo_id: str, files: dict[str, bytes | str | Path], message: str = "add") -> str:
        """Writes the files (LFS ones as pointers) and commits them; returns the commit id."""
        folder = self.folder(repo_type, repo_id)
        if not (folder / ".git").is_dir():
            folder.mkdir(parents=True)
            subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
        for name, content in files.items():
            data = content.read_bytes() if isinstance(content, Path) else \
                content.encode("utf-8") if isinstance(content, str) else content
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(LFS_SUFFIXES):
                oid = hashlib.sha256(data).hexdigest()
                blob = folder / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
                blob.parent.mkdir(parents=True, exist_ok=True)
                blob.write_bytes(data)
                target.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n")
            else:
                target.write_bytes(data)
        git = ["git", "-C", str(folder), "-c", "user.name=occi-test", "-c", "user.email=test@occi.invalid"]
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", message], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    def branch(self, repo_type: str, repo_id: str, name: str) -> None:
        """A branch at the repository's current commit (a revision a config can name)."""
        subprocess.run(["git", "-C", str(self.folder(repo_type, repo_id)), "branch", name], check=True)


@contextmanager
def olah_server(repos: HubRepos, workdir: Path):
    """Starts olah on a free port of 127.0.0.1 (offline: it never reaches for huggingface.co);
    yields its URL, the value of HF_ENDPOINT."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "olah.toml"
    config.write_text(f"""[basic]
host = "127.0.0.1"
port = {port}
mirror-netloc = "127.0.0.1:{port}"
mirror-lfs-netloc = "127.0.0.1:{port}"
mirrors-path = ["{repos.root}"]
repos-path = "{workdir / 'cache'}"
[accessibility]
offline = true
""")
    log = open(workdir / "olah.log", "wb")
    process = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(repos.root), "-c", str(config), "--log-path",
                                str(workdir / "logs")], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                               env={k: v for k, v in os.environ.items() if not k.startswith("HF_")})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # start-up: imports and uvicorn (a few seconds)
            if process.poll() is not None:
                raise RuntimeError(f"olah exited: {(workdir / 'olah.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/api/whoami-v2", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (without a token: 401)
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"olah did not answer: {(workdir / 'olah.log').read_text()[-2000:]}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def file_server(folder: Path):
    """Serves a folder over http://127.0.0.1:PORT/ (a model "given by URL")."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
