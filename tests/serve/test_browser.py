"""The page in a real browser: headless Chromium uploads a scan, waits for the result, and finds the probability and the heat map.

Skips without Chromium and Playwright (Debian: ``apt-get install chromium``;
``pip install -e '.[browser]'``). Playwright only drives the system's
Chromium: nothing is downloaded.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)", allow_module_level=True)

# as root and on a closed network: no sandbox, no background connections, a fresh profile
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run):
    import uvicorn

    from scintix.serve.app import ServeSettings, create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(ServeSettings([str(tiny_run)])), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_page_uploads_a_scan_and_shows_probability_and_heat_map(server, tmp_path):
    from PIL import Image

    scan = tmp_path / "scan.png"
    Image.fromarray((np.random.default_rng(0).random((48, 32)) * 255).astype(np.uint8)).save(scan)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server)
            page.wait_for_function("document.querySelectorAll('#model option').length > 0", timeout=10_000)
            page.set_input_files("#file", str(scan))
            page.click("#explain")
            page.wait_for_selector("td.prob", timeout=30_000)
            page.wait_for_function("document.getElementById('ov0') && document.getElementById('ov0').dataset.ready === '1'", timeout=10_000)
            probs = [float(t) for t in page.locator("td.prob").all_inner_texts()]
            assert len(probs) == 2 and abs(sum(probs) - 1) < 2e-3 and all(0 <= v <= 1 for v in probs)
            assert page.locator("#decision0").inner_text().strip() in ("normal", "abnormal")
            # the heat map is drawn: the overlay canvas has opaque, varying pixels
            alpha = page.evaluate("(() => { const c = document.getElementById('ov0'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                                  " const a = []; for (let k = 3; k < d.length; k += 4) a.push(d[k]); return [Math.min(...a), Math.max(...a), c.width, c.height]; })()")
            assert alpha[1] > alpha[0] and alpha[2:] == [16, 24]
            assert page.locator("#error").inner_text() == "" and not errors
            # a bad file gives one line on the page, not a broken page
            bad = tmp_path / "bad.png"
            bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
            page.set_input_files("#file", str(bad))
            page.click("#predict")
            page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=10_000)
            assert "not a readable PNG" in page.locator("#error").inner_text() and not errors
        finally:
            browser.close()
