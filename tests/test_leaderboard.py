"""The leaderboard from stored lm-eval result files, and its HTML page in a real browser."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, occi

DATA = REPO / "tests" / "data" / "leaderboard"
# model-a and model-b: small hand-written files in lm-eval's format; tiny-llama: written by the
# lm_eval command line itself (occi_mc_de/el/fr of a random 2-layer Llama, run from eval/).
GOLDEN = """| rank | model | shared (0) | cells | languages | own average | de | el | fr | unmapped |
|---|---|---|---|---|---|---|---|---|---|
| – | example/model-a | – | 6 | 2 | 0.582 | 0.600 | – | 0.350 | 0.990 |
| – | example/model-b | – | 4 | 2 | 0.550 | 0.500 | 0.600 | – | – |
| – | tiny-llama | – | 3 | 3 | 0.278 | 0.417 | 0.250 | 0.167 | – |

Ranking: not ranked: the 3 models share 0 cell(s) (benchmark x language), fewer than the 3 a ranking needs"""


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
    assert a["languages"]["de"] == pytest.approx(0.6) and a["own_average"] == pytest.approx((0.5 + 0.6 + 0.7 + 0.4 + 0.3 + 0.99) / 6)
    assert a["rank"] is None and a["shared"] is None and (a["cells"], a["languages_covered"]) == (6, 2)
    bpb = [c for c in summary["cells"] if c["benchmark"] == "bpb"]
    assert len(bpb) == 1 and bpb[0]["value"] == 1.2 and bpb[0]["stderr"] is None  # shown, not averaged
    arc = next(c for c in summary["cells"] if c["task"] == "arc_de" and c["model"] == "example/model-a")
    assert arc["stderr"] == 0.02 and arc["version"] == 1.0
    assert "| example/model-a | de | belebele | belebele_deu_Latn | acc_norm | – | 1.0 | 0.7000 ± 0.015 |" in text
    assert "| example/model-a | unmapped | some_other_task | some_other_task | acc | – | 1.0 | 0.9900 ± 0.000 |" in text
    assert "| tiny-llama | de | mc | occi_mc_de | acc_norm | 0 | 1.0 | 0.4167 ± 0.149 |" in text  # shots from n-shot
    b = next(m for m in summary["models"] if m["model"] == "example/model-b")
    assert b["languages_stderr"]["de"] == pytest.approx((0.02 ** 2 + 0.01 ** 2) ** 0.5 / 2)  # errors carried
    assert b["languages_stderr"]["fr"] is None


def test_missing_cells_are_missing_never_zero(board):
    out, _ = board
    rows = list(__import__("csv").DictReader((out / "leaderboard.csv").open()))
    assert len(rows) == 14  # every task of the three models (the unknown one too), nothing invented
    assert not any(r["model"] == "example/model-b" and r["language"] == "fr" for r in rows)
    assert "–" in (out / "leaderboard.md").read_text()


def test_bad_files_are_named_and_the_rest_is_used(board):
    _, result = board
    assert "results_broken.json: not an lm-eval results file" in result.stderr
    assert "results_foreign.json: not an lm-eval results file" in result.stderr


def test_names_can_be_given_and_nothing_usable_is_an_error(tmp_path):
    named = occi("leaderboard", f"mine={DATA / 'model-a'}", "--out", str(tmp_path / "named"))
    assert named.returncode == 0 and "| 1 | mine | 0.582 | 6 | 2 | 0.582 |" in named.stdout  # alone: ranked on its own
    empty = occi("leaderboard", str(DATA / "results_foreign.json"), "--out", str(tmp_path / "none"))
    assert empty.returncode == 2 and "no usable lm-eval results" in empty.stderr


def test_heatmap_is_a_picture(board):
    out, _ = board
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_heatmap_drawn_aside_gives_the_same_files_and_its_failure_is_one_line(board, tmp_path):
    from occi.report import leaderboard

    out, result = board  # the command line draws the heatmap in a forked child
    summary = leaderboard.summarize(leaderboard.read([str(DATA)]))
    text = leaderboard.write(summary, tmp_path / "here")
    for name in ("md", "csv", "json", "html", "png"):
        assert (tmp_path / "here" / f"leaderboard.{name}").read_bytes() == (out / f"leaderboard.{name}").read_bytes(), name
    assert result.stdout.startswith(text.split("\n\nPer benchmark")[0])
    (tmp_path / "taken" / "leaderboard.png").mkdir(parents=True)  # a folder where the picture goes
    with pytest.raises(OSError) as raised:  # the child fails; drawn again here, the error names the path
        leaderboard.write(summary, tmp_path / "taken", draw_aside=True)
    assert "leaderboard.png" in str(raised.value)
    assert (tmp_path / "taken" / "leaderboard.md").read_text() == text + "\n"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError) as raised:  # this process's own write fails: its error, the child reaped
        leaderboard.write(summary, blocker / "board", draw_aside=True)
    assert str(blocker) in str(raised.value)


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
        assert browser.evaluate(models) == ["example/model-a", "example/model-b", "tiny-llama"]  # unranked: by coverage
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
        assert browser.evaluate("document.querySelectorAll('#cells tbody tr').length") == 14
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
    _results(tmp_path / "in", "unknown", {"my_task": {"acc,none": 0.9}, "my_other_task_de": {"acc,none": 1.5},
                                          "my_bleu_fr": {"bleu,none": 101.0}, "my_ppl_fr": {"perplexity,none": 0.5}})
    _results(tmp_path / "in", "fine", {"arc_de": {"acc_norm,none": 0.5}})
    result = occi("leaderboard", str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "leaderboard.json").read_text())  # strict JSON: no NaN
    assert [m["model"] for m in summary["models"]] == ["fine", "nan", "unknown"]
    assert summary["models"][1]["own_average"] == pytest.approx(0.4) and summary["models"][1]["own_stderr"] is None
    assert "results_huge.json: task arc_de: acc_norm 1e+308 is not a number between 0 and 1" in result.stderr
    assert "results_negative.json: task arc_de: acc_norm -5" in result.stderr
    assert "results_negative.json: task occi_bpb_de: bits_per_byte -1 is not at least 0" in result.stderr
    assert "results_nan.json: task arc_de: acc_norm nan" in result.stderr
    assert "results_f1only.json: task arc_de: no 'acc_norm' score (metrics: f1,none)" in result.stderr
    assert "results_unknown.json: task my_other_task_de: acc 1.5 is not a number between 0 and 1" in result.stderr
    assert "results_unknown.json: task my_bleu_fr: bleu 101.0 is not a number between 0 and 100" in result.stderr
    assert "results_unknown.json: task my_ppl_fr: perplexity 0.5 is not at least 1" in result.stderr
    unknown = [c for c in summary["cells"] if c["model"] == "unknown"]
    assert [(c["task"], c["language"], c["benchmark"]) for c in unknown] == [("my_task", "unmapped", "my_task")]
    json.loads((tmp_path / "out" / "leaderboard.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_model_names_cannot_break_the_markdown_table(tmp_path):
    _results(tmp_path / "in", "a", {"arc_de": {"acc_norm,none": 0.5}})
    result = occi("leaderboard", f"evil | name\nnext={tmp_path / 'in'}", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    board = text.split("\n\n")[0].splitlines()
    assert board[2] == "| – | evil \\| name next | – | 1 | 1 | 0.500 | 0.500 |"  # one cell: too few to rank
    assert all(line.count("|") - line.count("\\|") == 8 for line in board)
    assert "| evil \\| name next | de | arc | arc_de |" in text


def test_html_and_markdown_in_names_reach_the_table_as_text(tmp_path):
    _results(tmp_path / "in", "<img src=x onerror=alert(1)>_`tick`_",
             {"arc_de": {"acc_norm,none": 0.5}, "**loud**_[x](http://e.st)": {"acc,none": 0.4}})
    result = occi("leaderboard", str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "<img" not in text and "**loud**" not in text and "`tick`" not in text
    assert not re.search(r"(?<!\\)[][`*]", text.split("\n\nAggregation")[0])  # every one of them escaped
    assert "| &lt;img src=x onerror=alert(1)&gt;\\_\\`tick\\`\\_ | de | arc | arc_de |" in text
    assert "| \\*\\*loud\\*\\*\\_\\[x\\](http://e.st) | \\*\\*loud\\*\\*\\_\\[x\\](http://e.st) | acc |" in text


def test_the_same_model_in_two_files_is_named_and_the_newer_counts(tmp_path):
    for folder, date, value in (("old", 1_700_000_000.0, 0.3), ("new", 1_760_000_000.0, 0.6)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "results_x.json").write_text(json.dumps(
            {"results": {"arc_de": {"acc_norm,none": value}}, "model_name": "org/m", "date": date}))
    result = occi("leaderboard", str(tmp_path / "new"), str(tmp_path / "old"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert [c["value"] for c in summary["cells"]] == [0.6]
    assert (f"occi: warning: org/m has two results for arc/de: arc_de in {tmp_path / 'new' / 'results_x.json'} "
            f"counts (the newer run); arc_de in {tmp_path / 'old' / 'results_x.json'} is left out") in result.stderr


def test_a_known_task_without_its_familys_metric_is_shown_under_the_one_it_has(tmp_path):
    _results(tmp_path / "in", "acc-only", {"arc_de": {"acc,none": 0.45, "acc_stderr,none": 0.02},
                                           "hellaswag_de": {"acc_norm,none": 0.5}})
    _results(tmp_path / "in", "norm", {"arc_de": {"acc_norm,none": 0.6}, "hellaswag_de": {"acc_norm,none": 0.4}})
    result = occi("leaderboard", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--min-shared", "1")
    assert result.returncode == 0, result.stderr
    assert ("results_acc-only.json: task arc_de: no 'acc_norm' score (metrics: acc,none); shown under its 'acc' "
            "in the column 'arc (acc)', not ranked against 'acc_norm'") in result.stderr
    summary = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    cells = {(c["model"], c["benchmark"]): (c["metric"], c["value"]) for c in summary["cells"]}
    assert cells[("acc-only", "arc (acc)")] == ("acc", 0.45) and cells[("norm", "arc")] == ("acc_norm", 0.6)
    assert summary["shared"] == [{"language": "de", "benchmark": "hellaswag"}]  # acc is not ranked against acc_norm
    assert "| acc-only | de | arc (acc) | arc_de | acc | – | – | 0.4500 ± 0.020 |" in (tmp_path / "out" / "leaderboard.md").read_text()


# ---------------------------------------------------------------- anyone's lm-eval output, fair ranks, published

def _lm_eval_output(root: Path, model: str, tasks: dict, groups: dict | None = None, shots: int | dict = 0,
                    configs: dict | None = None, version: float = 1.0) -> Path:
    """A results file laid out as `lm_eval --output_path ROOT` writes it: ROOT/<model with __>/results_<date>.json,
    with results, groups, group_subtasks, configs, versions, n-shot and higher_is_better."""
    folder = root / model.replace("/", "__")
    folder.mkdir(parents=True, exist_ok=True)
    names = [*tasks, *(groups or {})]
    data = {
        "results": {name: {"alias": name, **scores} for name, scores in {**tasks, **(groups or {})}.items()},
        "groups": {name: {"alias": name, **scores} for name, scores in (groups or {}).items()},
        "group_subtasks": {**{g: [t for t in tasks if t.startswith(g)] for g in groups or {}}, **{t: [] for t in tasks}},
        "configs": {t: {"task": t, "num_fewshot": 0, **(configs or {}).get(t, {})} for t in tasks},
        "versions": {name: version for name in names},
        "n-shot": {t: shots.get(t, 0) if isinstance(shots, dict) else shots for t in tasks},
        "higher_is_better": {name: {m.split(",")[0]: "perplexity" not in m for m in s if "stderr" not in m}
                             for name, s in {**tasks, **(groups or {})}.items()},
        "config": {"model": "hf", "model_args": f"pretrained={model},dtype=bfloat16"},
        "model_name": model, "date": 1764000000.0, "lm_eval_version": "0.4.13",
    }
    path = folder / "results_2026-11-30T10-00-00.000000.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def _acc(value: float, stderr: float = 0.01, metric: str = "acc") -> dict:
    return {f"{metric},none": value, f"{metric}_stderr,none": stderr}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> Path:
    """Two models' lm-eval output: known tasks (arc_de, hellaswag_de, arc_fr), tasks occi's table does not
    have (xwinograd_*, arc_challenge_mt_fi, a task named without a language, one with its language only in
    its metadata), and a group."""
    root = tmp_path_factory.mktemp("foreign")
    wide = {"arc_de": _acc(0.6, metric="acc_norm"), "hellaswag_de": _acc(0.6, metric="acc_norm"),
            "arc_fr": _acc(0.3, metric="acc_norm"), "xwinograd_fr": _acc(0.6), "xwinograd_pt": _acc(0.3),
            "xwinograd_zh": _acc(0.3), "arc_challenge_mt_fi": _acc(0.3, metric="acc_norm"),
            "lesetext": _acc(0.3), "wikitext_like": {"word_perplexity,none": 25.0}}
    _lm_eval_output(root, "org/wide-7b", wide, groups={"xwinograd": _acc(0.4)},
                    shots={"arc_de": 25, "hellaswag_de": 10, "arc_fr": 25},
                    configs={"lesetext": {"metadata": {"language": "de"}}})
    narrow = {"arc_de": _acc(0.5, metric="acc_norm"), "hellaswag_de": _acc(0.5, metric="acc_norm"),
              "xwinograd_fr": _acc(0.5), "my_task": _acc(1.0)}
    _lm_eval_output(root, "org/narrow-2b", narrow, shots={"arc_de": 25, "hellaswag_de": 10})
    return root


def test_any_lm_eval_output_is_placed_nothing_dropped(foreign, tmp_path):
    result = occi("leaderboard", str(foreign), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # every task and the group was placed
    summary = json.loads((tmp_path / "leaderboard.json").read_text())
    wide = {(c["task"], c["language"], c["benchmark"], c["metric"], c["group"])
            for c in summary["cells"] if c["model"] == "org/wide-7b"}
    assert wide == {("arc_de", "de", "arc", "acc_norm", False), ("hellaswag_de", "de", "hellaswag", "acc_norm", False),
                    ("arc_fr", "fr", "arc", "acc_norm", False), ("xwinograd_fr", "fr", "xwinograd", "acc", False),
                    ("xwinograd_pt", "pt", "xwinograd", "acc", False),
                    ("xwinograd_zh", "unmapped", "xwinograd_zh", "acc", False),  # not a language of the table
                    ("arc_challenge_mt_fi", "fi", "arc", "acc_norm", False),  # the table's Finnish ARC
                    ("lesetext", "de", "lesetext", "acc", False),  # language from the task's metadata
                    ("wikitext_like", "unmapped", "wikitext_like", "word_perplexity", False),
                    ("xwinograd", "unmapped", "xwinograd", "acc", True)}
    assert summary["languages"] == ["de", "fi", "fr", "pt", "unmapped"]
    row = next(m for m in summary["models"] if m["model"] == "org/wide-7b")
    # averaged: every task scored 0..1 with higher better; not the group, not the perplexity
    assert row["cells"] == 8 and row["languages_covered"] == 4
    assert row["own_average"] == pytest.approx((0.6 * 3 + 0.3 * 5) / 8)
    json.loads((tmp_path / "leaderboard.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_ranks_use_only_the_shared_cells_and_show_coverage(foreign, tmp_path):
    result = occi("leaderboard", str(foreign), "--out", str(tmp_path))
    summary = json.loads((tmp_path / "leaderboard.json").read_text())
    # narrow's own average (0.625 over 4 cells) is above wide's (0.41 over 8), but on the 3 cells both
    # have (arc/de, hellaswag/de, xwinograd/fr) wide scores 0.6 and narrow 0.5
    assert [(m["model"], m["rank"]) for m in summary["models"]] == [("org/wide-7b", 1), ("org/narrow-2b", 2)]
    narrow = summary["models"][1]
    assert narrow["own_average"] == pytest.approx(0.625) and narrow["shared"] == pytest.approx(0.5)
    assert narrow["shared_stderr"] == pytest.approx((3 * 0.01 ** 2) ** 0.5 / 3)
    assert summary["shared"] == [{"language": "de", "benchmark": "arc"}, {"language": "de", "benchmark": "hellaswag"},
                                 {"language": "fr", "benchmark": "xwinograd"}]
    assert "| 1 | org/wide-7b | 0.600 | 8 | 4 | 0.412 |" in result.stdout
    assert "| 2 | org/narrow-2b | 0.500 | 4 | 2 | 0.625 |" in result.stdout
    assert "ranked on the 3 cell(s) that all 2 compared model(s) share" in result.stdout
    strict = occi("leaderboard", str(foreign), "--out", str(tmp_path / "strict"), "--min-shared", "4")
    assert strict.returncode == 0 and "not ranked: the 2 models share 3 cell(s)" in strict.stdout
    assert all(m["rank"] is None for m in json.loads((tmp_path / "strict" / "leaderboard.json").read_text())["models"])


def test_published_values_join_only_where_task_and_setting_match(foreign, tmp_path):
    tables = tmp_path / "published"
    tables.mkdir()
    (tables / "good.yaml").write_text(
        "model: example/published-7b\nsource: https://example.org/card\nretrieved: '2026-12-01'\nresults:\n"
        "  - {task: arc_de, num_fewshot: 25, metric: acc_norm, value: 0.7, language: de}\n"   # same setting: placed
        "  - {task: hellaswag_de, num_fewshot: 0, metric: acc_norm, value: 0.8, language: de}\n"  # ours are 10-shot
        "  - {task: xwinograd_fr, num_fewshot: 0, metric: acc, value: 0.9, task_version: '2.0'}\n"  # ours are v1.0
        "  - {task: arc_fr, num_fewshot: 25, metric: acc, value: 0.5}\n"  # ours report acc_norm
        "  - {task: belebele_deu_Latn, num_fewshot: 5, metric: acc_norm, value: 0.9}\n")  # nobody ran it
    (tables / "other.yaml").write_text(
        "model: example/own-harness\nsource: https://example.org/paper\nretrieved: '2026-12-01'\nharness: own code\n"
        "results:\n  - {task: arc_de, num_fewshot: 25, metric: acc_norm, value: 0.95}\n")
    result = occi("leaderboard", str(foreign), "--out", str(tmp_path / "out"), "--published", str(tables))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    placed = [c for c in summary["cells"] if c["published"]]
    assert [(c["model"], c["task"], c["value"], c["shots"]) for c in placed] == [("example/published-7b", "arc_de", 0.7, 25)]
    assert placed[0]["source"] == "https://example.org/card (retrieved 2026-12-01)"
    left = summary["published_left_out"]
    assert any("hellaswag_de (0-shot acc_norm): setting differs from the compared results (10-shot acc_norm v1.0)" in l
               for l in left)
    assert any("xwinograd_fr" in l and "setting differs" in l for l in left)
    assert any("arc_fr (25-shot acc)" in l for l in left)
    assert any("belebele_deu_Latn" in l and "no compared result ran this task" in l for l in left)
    assert any("example/own-harness arc_de" in l and "measured with own code, not lm-eval" in l for l in left)
    assert "example/published-7b: 1 of 5 published value(s) placed" in result.stderr
    # the ranking stays on the compared results' shared cells; a published model lacking some is unranked
    assert [(m["model"], m["rank"]) for m in summary["models"]] == \
        [("org/wide-7b", 1), ("org/narrow-2b", 2), ("example/published-7b", None)]
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| example/published-7b (published) | de | arc | arc_de | acc_norm | 25 | – | 0.7000 |" in text
    assert "example/published-7b: https://example.org/card (retrieved 2026-12-01)" in text


def test_shipped_published_tables_parse_and_name_their_sources(foreign):
    from occi.report import leaderboard, published

    tables = published.read_tables()
    assert {t.model for t in tables} >= {"meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.1",
                                         "occiglot/occiglot-7b-eu5"}
    for table in tables:
        for result in table.results:
            assert result.source.startswith("https://") and len(result.retrieved) == 10
    occiglot = next(t for t in tables if t.model == "occiglot/occiglot-7b-eu5").results
    assert {r.language for r in occiglot} == {"en", "de", "es", "fr", "it"}
    assert {r.num_fewshot for r in occiglot} == {None}  # the cards do not state it
    # the foreign results ran arc_de 25-shot acc_norm: the Occiglot cards' arc_de values stay out
    board = leaderboard.read([str(foreign)])
    published.place(board, tables)
    assert not [key for key, cell in board.cells.items() if cell["published"]]
    shown = {(u["model"], u["task"]): u for u in board.published_unplaced}
    assert shown[("occiglot/occiglot-7b-eu5", "arc_de")]["value"] == 0.493584
    assert len(board.published_unplaced) == sum(len(t.results) for t in tables)  # every value shown


def test_published_values_without_a_stated_few_shot_setting_are_shown_never_placed(foreign, tmp_path):
    tables = tmp_path / "published"
    tables.mkdir()
    (tables / "vague.yaml").write_text(
        "model: example/vague-7b\nsource: https://example.org/card\nretrieved: '2026-12-01'\nresults:\n"
        "  - {task: arc_de, num_fewshot: null, metric: acc_norm, value: 0.71, language: de}\n"  # else matching
        "  - {task: hellaswag_de, num_fewshot: 10, metric: acc_norm, value: 0.72, language: de}\n")  # placed
    result = occi("leaderboard", str(foreign), "--out", str(tmp_path / "out"), "--published", str(tables))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert [(c["task"], c["value"]) for c in summary["cells"] if c["published"]] == [("hellaswag_de", 0.72)]
    assert summary["published_unplaced"] == [{
        "model": "example/vague-7b", "task": "arc_de", "language": "de", "benchmark": "", "shots": None,
        "metric": "acc_norm", "value": 0.71, "harness": "lm-eval", "reason": "the source does not state the few-shot setting",
        "source": "https://example.org/card (retrieved 2026-12-01)", "note": ""}]
    assert any("example/vague-7b arc_de (few-shot not stated, acc_norm): the source does not state" in line
               for line in summary["published_left_out"])
    vague = next(m for m in summary["models"] if m["model"] == "example/vague-7b")
    assert vague["own_average"] == pytest.approx(0.72) and vague["cells"] == 1
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    assert ("| example/vague-7b | de | arc_de | not stated | acc_norm | 0.7100 | the source does not state the "
            "few-shot setting | https://example.org/card (retrieved 2026-12-01) |") in text
    assert "| example/vague-7b (published) | de | arc |" not in text


def test_a_bad_published_table_is_one_line(foreign, tmp_path):
    (tmp_path / "bad.yaml").write_text("model: x\nsource: s\nretrieved: '2026-12-01'\nresults:\n"
                                       "  - {task: arc_de, num_fewshot: 25, metric: acc, value: 79.7}\n")
    result = occi("leaderboard", str(foreign), "--out", str(tmp_path / "out"), "--published", str(tmp_path))
    assert result.returncode == 2
    assert "bad.yaml: results[0] (arc_de): value: expected a number between 0 and 1, got 79.7" in result.stderr


def test_base_sft_dpo_and_merged_side_by_side_per_language(tmp_path):
    """A post-trained run's four models, with another model and a group that stay out of the
    side-by-side table: one column per model in the order asked, every value the results file's,
    a cell a model lacks shown as missing, in the Markdown, the JSON and the HTML."""
    root = tmp_path / "results"
    scores = {"base": {"arc_de": 0.25, "arc_fr": 0.3}, "sft": {"arc_de": 0.35, "arc_fr": 0.4},
              "dpo": {"arc_de": 0.375, "arc_fr": 0.45}, "merged": {"arc_de": 0.5}}
    files = {model: _lm_eval_output(root, model, {task: _acc(value, metric="acc_norm") for task, value in tasks.items()},
                                    groups={"arc": _acc(0.9)} if model == "sft" else None, shots=25)
             for model, tasks in scores.items()}
    _lm_eval_output(root, "other", {"arc_de": _acc(0.7, metric="acc_norm")}, shots=25)
    result = occi("leaderboard", str(root), "--out", str(tmp_path / "out"), "--side-by-side", "base,sft,dpo,merged,absent")
    assert result.returncode == 0, result.stderr
    side = json.loads((tmp_path / "out" / "leaderboard.json").read_text())["side_by_side"]
    assert side["models"] == ["base", "sft", "dpo", "merged"]
    read = {model: json.loads(path.read_text())["results"] for model, path in files.items()}
    assert [(row["language"], row["benchmark"]) for row in side["rows"]] == [("de", "arc"), ("fr", "arc")]
    for row in side["rows"]:
        for model, value in row["values"].items():
            task = f"arc_{row['language']}"
            assert value == (read[model][task]["acc_norm,none"] if task in read[model] else None), (model, task)
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert ("| language | benchmark | base | sft | dpo | merged |\n|---|---|---|---|---|---|\n"
            "| de | arc | 0.2500 | 0.3500 | 0.3750 | 0.5000 |\n| fr | arc | 0.3000 | 0.4000 | 0.4500 | – |\n") in markdown
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    table = page.split('<table id="side"')[1].split("</table>")[0]
    assert re.findall(r"<th[^>]*>([^<]+)</th>", table) == ["language", "benchmark", "base", "sft", "dpo", "merged"]
    assert 'data-value="0.375">0.3750</td><td data-value="0.5">0.5000</td></tr>' in table
