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
# model-a and model-b: small hand-written files in lm-eval's format; tiny-llama: written by the
# lm_eval command line itself (occi_mc_de/el/fr of a random 2-layer Llama, run from eval/).
GOLDEN = """| rank | model | overall | de | el | fr |
|---|---|---|---|---|---|
| 1 | example/model-b | 0.550 | 0.500 | 0.600 | – |
| 2 | example/model-a | 0.475 | 0.600 | – | 0.350 |
| 3 | tiny-llama | 0.278 | 0.417 | 0.250 | 0.167 |"""


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
    assert "| example/model-a | de | belebele | acc_norm | – | 0.7000 ± 0.015 |" in text
    assert "| tiny-llama | de | mc | acc_norm | 0 | 0.4167 ± 0.149 |" in text  # shots from lm-eval's n-shot
    b = next(m for m in summary["models"] if m["model"] == "example/model-b")
    assert b["languages_stderr"]["de"] == pytest.approx((0.02 ** 2 + 0.01 ** 2) ** 0.5 / 2)  # errors carried
    assert b["languages_stderr"]["fr"] is None and b["rank"] == 1


def test_missing_cells_are_missing_never_zero(board):
    out, _ = board
    rows = list(__import__("csv").DictReader((out / "leaderboard.csv").open()))
    assert len(rows) == 13  # every known task of the three models, nothing invented
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


def chromium_path() -> str:
    """Debian's chromium; installed through scripts/install-system.sh when missing (as `make test` does)."""
    if not shutil.which("chromium"):
        result = subprocess.run(["bash", str(REPO / "scripts" / "install-system.sh")], capture_output=True, text=True)
        assert shutil.which("chromium"), f"chromium is missing and could not be installed: {result.stderr[-500:]}"
    return shutil.which("chromium")


def test_html_page_in_headless_chromium_sorts_and_renders(board, tmp_path):
    out, _ = board
    page = (out / "leaderboard.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script src" not in page  # works offline, no CDN
    browser = Browser(chromium_path())
    try:
        browser.open((out / "leaderboard.html").as_uri())
        models = "Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.cells[0].textContent)"
        header = "Array.from(document.querySelectorAll('#board th')).find(th => th.textContent === '{}').click()"
        assert browser.evaluate("document.querySelectorAll('#board tbody tr').length") == 3
        assert browser.evaluate(models) == ["example/model-b", "example/model-a", "tiny-llama"]
        browser.evaluate(header.format("fr"))
        assert browser.evaluate(models) == ["example/model-a", "tiny-llama", "example/model-b"]  # no fr: last
        browser.evaluate(header.format("de"))
        assert browser.evaluate(models) == ["example/model-a", "example/model-b", "tiny-llama"]  # .600 .500 .417
        browser.evaluate(header.format("de"))
        assert browser.evaluate(models) == ["tiny-llama", "example/model-b", "example/model-a"]  # again: reversed
        browser.evaluate(header.format("model"))
        assert browser.evaluate(models) == ["example/model-a", "example/model-b", "tiny-llama"]  # text: a to z
        # the per-benchmark table sorts too; missing standard errors (bits per byte) stay last
        values = "Array.from(document.querySelectorAll('#cells tbody tr')).map(r => r.cells[{}].textContent)"
        assert browser.evaluate("document.querySelectorAll('#cells tbody tr').length") == 13
        browser.evaluate("Array.from(document.querySelectorAll('#cells th')).find(th => th.textContent === 'value').click()")
        shown = [float(v) for v in browser.evaluate(values.format(5))]
        assert shown == sorted(shown, reverse=True)
        browser.evaluate("Array.from(document.querySelectorAll('#cells th')).find(th => th.textContent === 'stderr').click()")
        assert browser.evaluate(values.format(6))[-1] == "–"
        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    finally:
        browser.close()
    (tmp_path / "shot.png").write_bytes(shot)
    import matplotlib.image

    pixels = matplotlib.image.imread(tmp_path / "shot.png")
    assert pixels.shape[0] > 100 and pixels.std() > 0.02, "the screenshot is blank"


def _results(folder: Path, name: str, results: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"results_{name}.json"
    path.write_text(json.dumps({"results": results, "model_name": name}))
    return path


def test_impossible_scores_and_unknown_metrics_are_named_not_ranked(tmp_path):
    _results(tmp_path / "in", "huge", {"arc_de": {"acc_norm,none": 1e308}})
    _results(tmp_path / "in", "negative", {"arc_de": {"acc_norm,none": -5}, "occi_bpb_de": {"bits_per_byte,none": -1}})
    (tmp_path / "in" / "results_nan.json").write_text(
        '{"model_name": "nan", "date": NaN, "n-shot": {"arc_fr": NaN}, "results": {"arc_de": {"acc_norm,none": NaN}, '
        '"arc_fr": {"acc_norm,none": 0.4, "acc_norm_stderr,none": NaN}}}')
    _results(tmp_path / "in", "f1only", {"arc_de": {"f1,none": 0.9}})
    _results(tmp_path / "in", "unknown", {"my_task": {"acc,none": 0.9}})
    _results(tmp_path / "in", "fine", {"arc_de": {"acc_norm,none": 0.5}})
    result = occi("leaderboard", str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "leaderboard.json").read_text())  # strict JSON: no NaN
    assert [m["model"] for m in summary["models"]] == ["fine", "nan"]
    assert summary["models"][1]["overall"] == pytest.approx(0.4) and summary["models"][1]["overall_stderr"] is None
    assert "results_huge.json: task arc_de: acc_norm 1e+308 is not a number between 0 and 1" in result.stderr
    assert "results_negative.json: task arc_de: acc_norm -5" in result.stderr
    assert "results_negative.json: task occi_bpb_de: bits_per_byte -1 is not at least 0" in result.stderr
    assert "results_nan.json: task arc_de: acc_norm nan" in result.stderr
    assert "results_f1only.json: task arc_de: no 'acc_norm' score (metrics: f1,none)" in result.stderr
    assert "results_unknown.json: no task occi can place (tasks: my_task)" in result.stderr
    json.loads((tmp_path / "out" / "leaderboard.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_model_names_cannot_break_the_markdown_table(tmp_path):
    _results(tmp_path / "in", "a", {"arc_de": {"acc_norm,none": 0.5}})
    result = occi("leaderboard", f"evil | name\nnext={tmp_path / 'in'}", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    board = text.split("\n\n")[0].splitlines()
    assert board[2] == "| 1 | evil \\| name next | 0.500 | 0.500 |"
    assert all(line.count("|") - line.count("\\|") == 5 for line in board)
    assert "| evil \\| name next | de | arc |" in text
