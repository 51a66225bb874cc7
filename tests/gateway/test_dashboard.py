"""The dashboard in a real browser: Chromium (Playwright) <- `serve --dashboard` <- Mosquitto
<- `deepsense replay`, every part a real process.

The screenshot goes to a temporary directory; with ``DEEPSENSE_UPDATE_SCREENSHOT=1`` it
replaces ``docs/dashboard.png`` (the README's picture), so CI never dirties the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from paho.mqtt import publish

from gateway.broker import free_port

pytestmark = [pytest.mark.broker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
#: Flags for Debian's Chromium in a container (Playwright's own browser cannot be downloaded).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
N_DEVICES = 4


def find_chromium() -> str | None:
    """Debian's `chromium` (``apt-get install chromium``), or None."""
    return shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.access(p, os.X_OK)),
        None)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium driven by Playwright; skipped (failed in CI) where missing."""
    chromium = find_chromium()
    missing = [name for name, ok in (("chromium (apt-get install chromium)", chromium),
                                     ("playwright (pip install playwright)",
                                      _importable("playwright"))) if not ok]
    if missing:
        message = f"browser test needs {' and '.join(missing)}; `make browser` installs them"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class Process:
    """A `deepsense` subcommand in a child process, its output kept line by line."""

    def __init__(self, *args: str):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.proc = subprocess.Popen([sys.executable, "-m", "deepsense.cli", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for_line(self, text: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.lines}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout_s} s: {self.lines}"
            time.sleep(0.05)

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout_s)
        self._reader.join(5)
        self.proc.stdout.close()
        return code


def test_dashboard_shows_devices_labels_and_refusals(broker, bundle, prefix, collect, browser,
                                                     tmp_path):
    predictions = collect(broker.url, f"{prefix}/+/prediction")
    (tmp_path / "gateway.toml").write_text("[gateway]\nstatus_interval_s = 1.0\n")
    port = free_port()
    serve = Process("serve", "--bundle", str(bundle), "--broker", broker.url,
                    "--topic-prefix", prefix, "--gateway-id", "gw1", "--config",
                    str(tmp_path / "gateway.toml"), "--dashboard", str(port))
    replay = None
    page = browser.new_page(viewport={"width": 1280, "height": 820})
    try:
        serve.wait_for_line("serving har 1")
        url = f"http://127.0.0.1:{port}/"
        page.goto(url)
        page.wait_for_selector('[data-gateway="gw1"] .state', timeout=10_000)
        assert page.text_content('[data-gateway="gw1"] .state') == "online"
        assert page.text_content('[data-gateway="gw1"] [data-field="model"]').startswith("har 1")

        # A device that walks, then sits, then ... (six activities, 10 s each, at 5x).
        replay = Process("replay", "--data", "synthetic:b", "--seconds", "10", "--speed", "5",
                         "--device-id", "phone", "--devices", str(N_DEVICES),
                         "--broker", broker.url, "--topic-prefix", prefix)
        shown = []                       # the label of phone-0 on the page, as it changes
        deadline = time.monotonic() + 60
        while replay.proc.poll() is None and time.monotonic() < deadline:
            label = page.text_content('[data-device="phone-0"] .label') \
                if page.query_selector('[data-device="phone-0"]') else None
            if label and label != "-" and (not shown or shown[-1] != label):
                shown.append(label)
            time.sleep(0.1)
        assert replay.stop() == 0, replay.lines

        ids = [card.get_attribute("data-device") for card in page.query_selector_all(".device")]
        assert ids == [f"phone-{k}" for k in range(N_DEVICES)]
        live = [p["label"] for p in predictions.json("/prediction") if p["device_id"] == "phone-0"]
        assert len(set(shown)) >= 2, f"label never changed on the page: {shown}; live {live}"
        assert set(shown) <= set(live), (shown, live)
        assert all(page.query_selector_all(f'[data-device="phone-{k}"] .bars .fill')
                   for k in range(N_DEVICES))

        # A refused payload shows in the gateway's counters (from its retained status).
        publish.single(f"{prefix}/phone-0/raw/acc", b"{not json", qos=1,
                       hostname=broker.host, port=broker.port)
        page.wait_for_selector('[data-gateway="gw1"] [data-reason="malformed_json"]',
                               timeout=10_000)
        assert page.text_content(
            '[data-gateway="gw1"] [data-reason="malformed_json"] .count') == "1"
        state = json.loads(urllib.request.urlopen(url + "api/state", timeout=5).read())
        assert state["gateways"][0]["refusals"]["malformed_json"] == 1

        shot = (REPO / "docs" / "dashboard.png"
                if os.environ.get("DEEPSENSE_UPDATE_SCREENSHOT") == "1"
                else tmp_path / "dashboard.png")
        shot.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        page.close()
        if replay is not None:
            replay.stop()
        code = serve.stop()
    assert code == 0, serve.lines
    assert any("all predictions acknowledged" in line for line in serve.lines), serve.lines


def test_demo_keeps_the_dashboard_open_until_ctrl_c(bundle, mosquitto_binary, tmp_path):
    """`deepsense demo --dashboard PORT`: the page serves every replayed device until Ctrl-C."""
    from deepsense.data.synthetic import SyntheticSpec, make_recording
    from gateway.demo import run_live_demo

    spec = SyntheticSpec(n_users=3, devices=("nexus4_1",), seconds_per_activity=8.0, seed=0)
    recordings = [make_recording(spec, "b", "nexus4_1", a) for a in ("walk", "sit")]
    lines: list[str] = []
    port = free_port()
    seen: dict = {}

    def press_ctrl_c_once_open() -> None:
        deadline = time.monotonic() + 60
        while not any("until Ctrl-C" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.update(json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/state", timeout=5).read()))
        os.kill(os.getpid(), signal.SIGINT)            # what Ctrl-C sends

    # A shell that starts pytest in the background ignores SIGINT: Ctrl-C must still arrive.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=press_ctrl_c_once_open, daemon=True)
    presser.start()
    try:
        summary = run_live_demo(bundle, recordings, tmp_path / "live", n_show=0,
                                print_fn=lines.append, dashboard_port=port)
    finally:
        signal.signal(signal.SIGINT, previous)
    presser.join(5)
    assert sorted(d["device_id"] for d in seen["devices"]) == ["nexus4_1-sit", "nexus4_1-walk"]
    assert sum(d["n"] for d in seen["devices"]) == summary["n_predictions"] > 0
    with pytest.raises(OSError):                       # closed after Ctrl-C
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
