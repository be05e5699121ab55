"""The leaderboard from stored lm-eval result files, and its HTML page in a real browser."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, occi

DATA = REPO / "tests" / "data" / "leaderboard"
GOLDEN = """| rank | model | overall | de | el | fr |
|---|---|---|---|---|---|
| 1 | example/model-b | 0.550 | 0.500 | 0.600 | – |
| 2 | example/model-a | 0.475 | 0.600 | – | 0.350 |"""


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("board")
    result = occi("leaderboard", str(DATA), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_table_matches_the_golden_one(board):
    out, result = board
    text = (out / "leaderboard.md").read_text()
    assert text.startswith(GOLDEN)
    assert GOLDEN in result.stdout
    summary = json.loads((out / "leaderboard.json").read_text())
    a = next(m for m in summary["models"] if m["model"] == "example/model-a")
    assert a["languages"]["de"] == pytest.approx(0.6) and a["overall"] == pytest.approx(0.475)
    bpb = [c for c in summary["cells"] if c["benchmark"] == "bpb"]
    assert len(bpb) == 1 and bpb[0]["value"] == 1.2 and bpb[0]["stderr"] is None  # shown, not averaged
    arc = next(c for c in summary["cells"] if c["task"] == "arc_de" and c["model"] == "example/model-a")
    assert arc["stderr"] == 0.02
    assert "| example/model-a | de | belebele | acc_norm | 0.7000 ± 0.015 |" in text


def test_missing_cells_are_missing_never_zero(board):
    out, _ = board
    rows = list(__import__("csv").DictReader((out / "leaderboard.csv").open()))
    assert len(rows) == 10  # every known task of both models, nothing invented
    assert not any(r["model"] == "example/model-b" and r["language"] == "fr" for r in rows)
    assert "–" in (out / "leaderboard.md").read_text()


def test_bad_files_are_named_and_the_rest_is_used(board):
    _, result = board
    assert "results_broken.json: not an lm-eval results file" in result.stderr
    assert "results_foreign.json: not an lm-eval results file" in result.stderr


def test_names_can_be_given_and_nothing_usable_is_an_error(tmp_path):
    named = occi("leaderboard", f"mine={DATA / 'model-a'}", "--out", str(tmp_path / "named"))
    assert named.returncode == 0 and "| 1 | mine | 0.475 |" in named.stdout
    empty = occi("leaderboard", str(DATA / "results_foreign.json"), "--out", str(tmp_path / "none"))
    assert empty.returncode == 2 and "no usable lm-eval results" in empty.stderr


def test_heatmap_is_a_picture(board):
    out, _ = board
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the page in Chromium

class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (no extra package)."""

    def __init__(self, chromium: str):
        self.profile = tempfile.mkdtemp(prefix="occi-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire():  # Chromium reads commands on fd 3 and writes answers on fd 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "--window-size=1200,800", "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next, self._buffer, self.session = 0, b"", None

    def call(self, method: str, **params):
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 20)
                assert chunk, "chromium closed the pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                assert "error" not in reply, reply
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        for _ in range(100):
            if self.evaluate("document.readyState") == "complete":
                return
            self.evaluate("new Promise(r => setTimeout(r, 50))")
        raise AssertionError("page did not load")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def test_html_page_in_headless_chromium_sorts_and_renders(board, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed: scripts/install-system.sh installs it"
    out, _ = board
    page = (out / "leaderboard.html").read_text()
    assert "http://" not in page and "https://" not in page  # works offline, no CDN
    browser = Browser(chromium)
    try:
        browser.open((out / "leaderboard.html").as_uri())
        models = "Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.cells[0].textContent)"
        assert browser.evaluate("document.querySelectorAll('#board tbody tr').length") == 2
        assert browser.evaluate(models) == ["example/model-b", "example/model-a"]
        fr_header = "Array.from(document.querySelectorAll('#board th')).find(th => th.textContent === 'fr')"
        browser.evaluate(f"{fr_header}.click()")
        assert browser.evaluate(models) == ["example/model-a", "example/model-b"]  # model-b has no fr: last
        browser.evaluate("Array.from(document.querySelectorAll('#board th')).find(th => th.textContent === 'de').click()")
        assert browser.evaluate(models) == ["example/model-a", "example/model-b"]  # 0.600 > 0.500
        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    finally:
        browser.close()
    (tmp_path / "shot.png").write_bytes(shot)
    import matplotlib.image

    pixels = matplotlib.image.imread(tmp_path / "shot.png")
    assert pixels.shape[0] > 100 and pixels.std() > 0.02, "the screenshot is blank"
