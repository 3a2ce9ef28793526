"""The README's screenshot of the page: a SYNTHETIC whole-body scan explained by a served run, in headless Chromium.

    python benchmarks/serve_screenshot.py --run RUN_DIR [--out docs/serve_page.png]

Simulates one whole-body bone scan (``scintix simulate``'s phantom, anterior
view, written as NM DICOM), serves RUN on loopback, uploads the scan on the
page, asks for the Grad-CAM heat map and saves a screenshot. Needs Debian's
``chromium`` and ``pip install -e '.[browser]'``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import ROOT, served

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--out", default=str(ROOT / "docs" / "serve_page.png"))
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from scintix.data.dicom_write import write_nm
    from scintix.simulate import simulate_bone_scan

    scan = simulate_bone_scan(np.random.default_rng(a.seed), {"metastasis"})
    path = write_nm(Path(tempfile.mkdtemp()) / "synthetic_wholebody.dcm", {"ant": np.clip(scan.views["ant"], 0, 65535)}, patient_id="SYNTHETIC",
                    comments="SYNTHETIC scan simulated by scintix")
    with served(a.run) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            page.set_input_files("#file", str(path))
            page.click("#explain")
            page.wait_for_selector("td.prob", timeout=60_000)
            page.wait_for_timeout(500)  # images decode
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=a.out, full_page=True)
            browser.close()
        print(f"screenshot: {a.out}")


if __name__ == "__main__":
    main()
