"""Open report.html in headless Chromium and check that it loads, logs no errors and plays its clips.

Usage::

    python scripts/check_report_browser.py [REPORT.html ...] [--screenshot PNG] [--chromium PATH]

With no report given, builds the synthetic ablation of ``tests/test_report.py`` in a temporary
MLflow store, renders it with ``omninft_bench.report.render_report`` and checks that.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (file descriptors 3
and 4, NUL-separated JSON), so nothing beyond the standard library and Debian's ``chromium`` is
needed, and the report itself carries no test script.  Checks, for each report:

* the page fires its load event; no console error, uncaught exception or error log entry;
* no request leaves the file: every subresource is a ``data:`` URI;
* every ``<img>`` decoded; every ``<video>`` has a duration, video frames and decoded audio bytes,
  and its ``currentTime`` advances when played (muted, as autoplay policy requires).

Exit status 0 when every check passes, 1 otherwise (each failure printed), 2 when Chromium is
missing (install: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Flags that work on the project's closed-network machines (see docs): without the
# background-networking ones Chromium keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--window-size=1280,900",
]

# Runs inside the page through Runtime.evaluate: plays each clip and reports what the media
# pipeline decoded.  Kept here, not in the report.
PLAY_VIDEOS_JS = """
(async () => {
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const out = {images: [], videos: [], canPlayMp4: document.createElement('video')
               .canPlayType('video/mp4; codecs="avc1.42E01E, mp4a.40.2"')};
  for (const img of document.images) {
    if (!img.complete) await new Promise((r) => { img.onload = img.onerror = r; });
    out.images.push({ok: img.naturalWidth > 0, width: img.naturalWidth});
  }
  for (const v of document.querySelectorAll('video')) {
    const r = {src: (v.currentSrc || v.src).slice(0, 30), error: null};
    try {
      if (v.readyState < 1) {
        await Promise.race([new Promise((ok) => v.addEventListener('loadedmetadata', ok, {once: true})), wait(5000)]);
      }
      v.muted = true;
      await v.play();
      const t0 = performance.now();
      while (v.currentTime < 0.3 && !v.ended && performance.now() - t0 < 8000) await wait(50);
      v.pause();
    } catch (e) { r.error = String(e); }
    Object.assign(r, {
      mediaError: v.error ? v.error.code + ': ' + v.error.message : null,
      readyState: v.readyState, duration: v.duration, currentTime: v.currentTime,
      width: v.videoWidth, height: v.videoHeight,
      videoBytes: v.webkitVideoDecodedByteCount, audioBytes: v.webkitAudioDecodedByteCount,
    });
    out.videos.push(r);
  }
  return out;
})()
"""


class CDPError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium with a DevTools connection over --remote-debugging-pipe."""

    def __init__(self, executable: str, timeout: float = 60.0):
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4. Move the pipe ends above
        # both first, so that putting one in place cannot clobber the other.
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)

        def child_fds() -> None:
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, "--remote-debugging-pipe",
             f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            preexec_fn=child_fds, pass_fds=(3, 4),
        )
        os.close(high_r)
        os.close(high_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise CDPError(f"Chromium closed the pipe (exit {self.proc.poll()}): {self.log()[-2000:]}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str | None = None) -> dict:
        deadline = time.monotonic() + self.timeout
        seen = len(self.events)
        for e in self.events[:seen]:
            if e.get("method") == method and e.get("sessionId") == session:
                return e
        while True:
            e = self._read_message(deadline)
            self.events.append(e)
            if e.get("method") == method and e.get("sessionId") == session:
                return e

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._profile.cleanup()


def check_report(browser: Chromium, report: Path, screenshot: Path | None = None) -> list[str]:
    """Load ``report`` in a fresh tab; return the failures (empty = pass)."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session=session)
    first_event = len(browser.events)
    browser.send("Page.navigate", {"url": report.resolve().as_uri()}, session=session)
    browser.wait_event("Page.loadEventFired", session)
    result = browser.send(
        "Runtime.evaluate",
        {"expression": PLAY_VIDEOS_JS, "awaitPromise": True, "returnByValue": True},
        session=session,
    )
    if "exceptionDetails" in result:
        return [f"check script failed: {result['exceptionDetails']}"]
    media = result["result"]["value"]
    if screenshot is not None:
        size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        }, session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))

    failures = []
    for e in browser.events[first_event:]:
        if e.get("sessionId") != session:
            continue
        params, method = e.get("params", {}), e.get("method")
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            failures.append(f"console.{params['type']}: {[a.get('value', a.get('description')) for a in params.get('args', [])]}")
        elif method == "Runtime.exceptionThrown":
            failures.append(f"uncaught exception: {params['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            failures.append(f"log error: {params['entry'].get('text')} ({params['entry'].get('url', '')})")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith("data:") and url != report.resolve().as_uri():
                failures.append(f"external request: {url}")
        elif method == "Network.loadingFailed":
            failures.append(f"failed load: {params.get('errorText')}")
    if not media["images"]:
        failures.append("no <img> (the curves) in the page")
    failures += [f"image {i} did not decode" for i, img in enumerate(media["images"]) if not img["ok"]]
    if not media["videos"]:
        failures.append("no <video> in the page")
    for i, v in enumerate(media["videos"]):
        problems = []
        if v["error"] or v["mediaError"]:
            problems.append(f"error {v['error'] or v['mediaError']}")
        if not (v["duration"] or 0) > 0:
            problems.append(f"duration {v['duration']}")
        if not v["currentTime"] > 0:
            problems.append("currentTime did not advance")
        if not v["width"]:
            problems.append("no video frames")
        if not v["audioBytes"]:
            problems.append("no decoded audio")
        if problems:
            failures.append(f"video {i} ({v['src']}...): {', '.join(problems)}; canPlayType mp4 = {media['canPlayMp4']!r}")
    browser.send("Target.closeTarget", {"targetId": target})
    played = ", ".join(f"{v['currentTime']:.2f}s/{v['duration'] or 0:.2f}s" for v in media["videos"])
    print(f"{report}: {len(media['videos'])} videos played ({played}), "
          f"{len(media['images'])} images, {len(failures)} failures")
    return failures


def _demo_report(workdir: Path) -> Path:
    """Render the synthetic ablation from tests/test_report.py."""
    spec = importlib.util.spec_from_file_location("_report_fixture", ROOT / "tests" / "test_report.py")
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    from omninft_bench.report import render_report

    uri, _ = fixture.build_experiment(workdir / "store")
    return render_report(fixture.EXPERIMENT, workdir / "report", uri, max_samples=2).html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="*", type=Path, help="report.html files (default: a synthetic one)")
    parser.add_argument("--screenshot", type=Path, help="write a full-page PNG of the (first) report here")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per DevTools call")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"error: no Chromium at {args.chromium} (apt-get install -y chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="report-browser-") as tmp:
        reports = args.reports or [_demo_report(Path(tmp))]
        browser = Chromium(args.chromium, timeout=args.timeout)
        failures = []
        try:
            for i, report in enumerate(reports):
                failures += [f"{report}: {f}" for f in check_report(browser, report, args.screenshot if i == 0 else None)]
        finally:
            browser.close()
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    print("browser check:", "FAILED" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
