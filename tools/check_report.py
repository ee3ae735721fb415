#!/usr/bin/env python3
"""Renders `laq report` pages in headless Chromium and checks that every chart is drawn (issue 6).

Builds two reports from the bundled Fashion-MNIST MLP: a calibrated lat2a model against its
full-precision file with data (every section: sizes, histograms over the full-precision weights,
calibration curves, diff, per-layer effects), and a one-shot per-channel laq 3-bit model alone
(level bands). Each page is loaded in headless Chromium; its own check (`#chart-check`: every
chart's SVG laid out with a visible mark) must report every chart drawn. A screenshot of each
is kept under out/ (not committed) as the test artifact.

Usage: tools/check_report.py [--laq PATH] [--chromium PATH] [--out DIR]
Exit status: 0 every chart drawn, 1 a chart missing, 2 setup problem (no laq, no Chromium).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS = os.path.join(ROOT, "testdata", "keras")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--laq", default=os.path.join(ROOT, ".build", "debug", "laq"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome"))
    parser.add_argument("--out", default=os.path.join(ROOT, "out"))
    args = parser.parse_args()
    if not args.chromium:
        print("check_report: no chromium on PATH (tools/setup --report installs Debian's chromium)", file=sys.stderr)
        return 2
    if not os.access(args.laq, os.X_OK):
        print(f"check_report: {args.laq} is not an executable laq (swift build first)", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="laq-report-")

    def laq(*arguments):
        result = subprocess.run([args.laq, *arguments], capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"check_report: laq {' '.join(arguments)}: exit {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    path = lambda name: os.path.join(work, name)
    calibration = os.path.join(KERAS, "fmnist_calibration.npz")
    laq("import", os.path.join(KERAS, "k3_fmnist_mlp.h5"), "-o", path("mlp.laq"))
    laq("quantize", path("mlp.laq"), "-o", path("lat2a.laq"), "--method", "lat2a", "--calib", calibration, "--epochs", "2")
    laq("quantize", path("mlp.laq"), "-o", path("laq3.laq"), "--method", "laq", "--bits", "3", "--per-channel", "--one-shot")
    reports = [
        ("calibrated-against", ["report", path("lat2a.laq"), "--against", path("mlp.laq"), "--data", calibration, "--limit", "500"]),
        ("per-channel", ["report", path("laq3.laq")]),
    ]
    failures = []
    for name, command in reports:
        html = os.path.join(args.out, f"report-{name}.html")
        summary = json.loads(laq(*command, "-o", html, "--json"))
        expected = len(summary["charts"])
        url = "file://" + os.path.abspath(html)
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                 f"--user-data-dir={path('chromium-' + name)}"]
        dom = subprocess.run([args.chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        match = re.search(r'<pre id="chart-check"[^>]*>chart-check (\{.*?\})</pre>', dom.stdout)
        if not match:
            failures.append(f"{name}: the page's chart check did not run (chromium exit {dom.returncode}: {dom.stderr.strip()[-300:]})")
            continue
        result = json.loads(match.group(1))
        screenshot = os.path.join(args.out, f"report-{name}.png")
        subprocess.run([args.chromium, *flags, "--window-size=1100,4000", f"--screenshot={screenshot}", url],
                       capture_output=True, text=True, timeout=120)
        ok = result["expected"] == expected and result["drawn"] == expected and not result["failed"] and expected > 0
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {result['drawn']}/{expected} charts drawn {summary['charts']}"
              f"{'' if not result['failed'] else ' missing: ' + ', '.join(result['failed'])}; screenshot {os.path.relpath(screenshot, ROOT)}")
        if not ok:
            failures.append(f"{name}: {result}")
    shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("check_report: " + "; ".join(failures), file=sys.stderr)
        return 1
    print(f"check_report: every chart of {len(reports)} reports drawn in {os.path.basename(args.chromium)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
