"""The rendered leaderboard page in a real browser: headless Chromium (Debian's ``chromium``)
driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no extra packages).

Checks: one table row per entry, clicking a column header re-sorts the rows, and a screenshot is
saved to ``test-artifacts/`` (gitignored). Skips with a reason when chromium is absent.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from cdbench.leaderboard.board import build_board, make_entry, scatter_points
from cdbench.leaderboard.render import render_site

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).exists()), None)


class DevToolsPipe:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out,
    messages separated by NUL bytes)."""

    def __init__(self, executable: str, profile: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--no-default-browser-check", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"]

        def child_fds():  # chromium expects the pipe on fds 3 and 4 (copied high first: no clobbering)
            r, w = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(3, 4, to_chrome_r, from_chrome_w),
                                     preexec_fn=child_fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next_id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 20) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def _metrics(rng: np.random.Generator, quality: float) -> dict:
    """A hand-made metrics dict in the evaluator's layout (the board and page only read it)."""
    out = {}
    for subset in ("all", "aligned", "not_aligned"):
        srcc = quality - rng.uniform(0, 0.05)
        stress = 100 * (1 - quality) + rng.uniform(0, 5)
        out[subset] = {"n": 48, "srcc": srcc, "krcc": srcc - 0.15, "plcc": srcc + 0.01, "plcc_raw": srcc,
                       "rmse": 1 - quality, "stress": stress,
                       "ci95": {"level": 0.95, "srcc": [srcc - 0.04, srcc + 0.04], "stress": [stress - 3, stress + 3]}}
    return out


def _board(n_entries: int = 4) -> dict:
    rng = np.random.default_rng(7)
    n = 48
    human = rng.uniform(1.5, 12, n)
    aligned = rng.random(n) < 0.6
    entries = []
    for k in range(n_entries):
        pred = human + rng.normal(0, 0.4 + 1.1 * k, n)
        sub = {"schema_version": 1, "model": {"name": f"model-{k}", "kind": "formula"},
               "dataset": {"name": "synthetic", "config": "scores", "split": "test"},
               "predictions": [{"pair_id": f"p{i}", "score": float(v)} for i, v in enumerate(pred)]}
        entries.append(make_entry(sub, _metrics(rng, 0.95 - 0.15 * k), scatter_points(pred, human, aligned)))
    return build_board(entries)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_page_in_headless_chromium(tmp_path):
    board = _board(4)
    site = render_site(board, tmp_path / "site")
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path))
    browser = DevToolsPipe(CHROMIUM, profile)
    try:
        target = browser.send("Target.createTarget", {"url": site["html"].resolve().as_uri()})
        session = browser.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]

        def js(expr: str):
            r = browser.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
            assert "exceptionDetails" not in r, r
            return r["result"].get("value")

        deadline = time.monotonic() + 20
        while js("location.protocol + document.readyState") != "file:complete":
            assert time.monotonic() < deadline, "the page did not finish loading"
            time.sleep(0.05)
        names = "Array.from(document.querySelectorAll('table.board tbody tr')).map(r => r.cells[1].textContent)"
        assert js(names) == [f"model-{k}" for k in range(4)]  # one row per entry, in rank order
        assert js("document.querySelectorAll('table.board tbody tr').length") == len(board["entries"])
        assert js("document.querySelectorAll('svg circle').length") == 4 * 48  # a scatter plot per entry

        # a real mouse click on the "Model" header, then on the first STRESS column (all pairs)
        def click(selector: str) -> None:
            box = js(f"(() => {{const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                     f" return [r.x + r.width / 2, r.y + r.height / 2]}})()")
            for kind in ("mousePressed", "mouseReleased"):
                browser.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                          "clickCount": 1}, session)

        click("table.board th[data-col='1']")
        assert js(names) == [f"model-{k}" for k in (3, 2, 1, 0)]  # names descending on the first click
        click("table.board th[data-col='1']")
        assert js(names) == [f"model-{k}" for k in range(4)]
        stress_col = "table.board th[data-col='6']"
        assert js(f"document.querySelector({json.dumps(stress_col)}).textContent") == "STRESS"
        click(stress_col)  # lower is better: ascending first, the best model on top
        stress_values = js("Array.from(document.querySelectorAll('table.board tbody tr'))"
                           ".map(r => Number(r.cells[6].getAttribute('data-value')))")
        assert stress_values == sorted(stress_values)
        click("table.board th[data-col='0']")
        assert js("Array.from(document.querySelectorAll('table.board tbody tr')).map(r => r.cells[0].textContent)") \
            == ["1", "2", "3", "4"]
        # nothing was requested from the network: every resource is the page itself
        assert js("performance.getEntriesByType('resource').length") == 0
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        ARTIFACTS.mkdir(exist_ok=True)
        png = base64.b64decode(shot["data"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        (ARTIFACTS / "leaderboard.png").write_bytes(png)
    finally:
        browser.close()
