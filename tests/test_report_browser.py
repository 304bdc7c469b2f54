"""The HTML report in a real browser: headless Chromium opens it from disk.

Checks that no script error or console message appears (the page's ``?selftest`` script records
``window.onerror``, unhandled rejections, ``alert`` calls and ``console.error``; Chromium's own
console log comes through ``--enable-logging=stderr``), that every plot rendered at a non-zero size,
and saves screenshots (light, and dark through ``--force-dark-mode``, i.e. ``prefers-color-scheme:
dark``) under ``test-artifacts/`` for CI to keep.

Needs Debian's ``chromium`` package (CI installs it); skipped with that reason when it is missing.
The report is the reference CNN's (``reference_models/cnn.py`` on the offline MNIST of
``NNDIAG_DATA_DIR``, with shortened sweeps so the test stays quick) plus a model with a submodule
named like an HTML injection; without the MNIST files a small CNN on generated data stands in.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                           "google-chrome-stable") if shutil.which(n)), None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium); CI installs it")

EVIL = "<img src=x onerror=alert(1)>"
# Shorter sweeps than the defaults: the test is about the report, not the probes' verdicts.
QUICK = {"lr-range": {"num_it": 40, "samples": 64}, "overfit": {"steps": 40, "max_seconds": 5.0}}


def _chromium(args: list[str], profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
           "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HOME": str(profile)})


def _selftest(page: Path, profile: Path) -> tuple[dict, list[str]]:
    """The page's selftest record and Chromium's console lines for it."""
    proc = _chromium(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--window-size=1200,900",
                      "--dump-dom", page.as_uri() + "?selftest"], profile)
    m = re.search(r'<pre id="selftest">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no selftest output (exit {proc.returncode}); stderr tail:\n{proc.stderr[-2000:]}"
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(m.group(1))), console


def _screenshot(page: Path, out: Path, profile: Path, extra: tuple[str, ...] = (), size: str = "1200,2400") -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    proc = _chromium([f"--window-size={size}", *extra, f"--screenshot={out}", page.as_uri()], profile)
    assert out.exists() and out.stat().st_size > 5_000, f"no screenshot (exit {proc.returncode}):\n{proc.stderr[-2000:]}"


def _mean_brightness(png: Path) -> float:
    from PIL import Image

    with Image.open(png) as im:
        hist = im.convert("L").histogram()
    return sum(level * count for level, count in enumerate(hist)) / max(1, sum(hist))


def _check_page(page_text: str, path: Path, tmp_path: Path, name: str) -> dict:
    path.write_text(page_text, encoding="utf-8")
    rec, console = _selftest(path, tmp_path / "profile-selftest")
    assert rec["ready"] == "load"
    assert rec["errors"] == [], rec["errors"]
    assert rec["alerts"] == [], "a script from the report's content ran: " + repr(rec["alerts"])
    assert console == [], "console messages:\n" + "\n".join(console)
    assert rec["banner"] is True
    expected_plots = page_text.count('<figure class="plot"')
    assert expected_plots > 0
    assert len(rec["plots"]) == expected_plots
    for plot in rec["plots"]:
        assert plot["w"] > 200 and plot["h"] > 60, plot
    light = ARTIFACTS / f"{name}.png"
    dark = ARTIFACTS / f"{name}-dark.png"
    _screenshot(path, light, tmp_path / "profile-light")
    # the dark palette through prefers-color-scheme, as a browser in dark mode asks for it
    _screenshot(path, dark, tmp_path / "profile-dark", extra=("--force-dark-mode",))
    assert _mean_brightness(dark) < 100 < _mean_brightness(light)
    return rec


def _evil_report(torch, nndiag):
    class Evil(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.add_module(EVIL, torch.nn.Linear(4, 8))
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.out(torch.relu(getattr(self, EVIL)(x)))

    torch.manual_seed(0)
    batch = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    return nndiag.check(model=Evil(), batch=batch, loss_fn=torch.nn.CrossEntropyLoss(),
                        probes=["params", "gradients", "dead-neurons"])


def _cnn_report(torch, nndiag):
    cnn = REPO / "reference_models" / "cnn.py"
    data_dir = Path(os.environ.get("NNDIAG_DATA_DIR", REPO.parent / "shared" / "data"))
    if cnn.exists() and (data_dir / "mnist").is_dir():
        return nndiag.check(str(cnn), settings=QUICK)
    nn = torch.nn  # stand-in: the same layout on generated data
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    return nndiag.check(model=model, batch=batch, loss_fn=nn.CrossEntropyLoss(), settings=QUICK)


def test_reference_cnn_report_in_chromium(tmp_path):
    torch = pytest.importorskip("torch")
    import nndiag
    from nndiag.writers import html as html_writer

    report = _cnn_report(torch, nndiag).merged(_evil_report(torch, nndiag))
    page = html_writer.render(report)
    assert len(page.encode()) < 2_000_000
    rec = _check_page(page, tmp_path / "report.html", tmp_path, "report-cnn")
    assert rec["subjects"] == 2
    assert rec["probes"] == sum(len(s.results) for s in report.subjects)
    # the CNN report has its gradients, dead-neurons, overfit and lr-range plots
    cnn = report.subjects[0]
    plotted = {r.probe for r in cnn.results} & {"gradients", "dead-neurons", "overfit", "lr-range"}
    assert len([p for p in rec["plots"] if p["id"].startswith("s0-")]) >= len(plotted) - 1


def test_demo_report_with_every_plot_in_chromium(tmp_path):
    from nndiag.writers import html as html_writer
    from fixtures.demo_report import demo_report

    page = html_writer.render(demo_report(2))
    rec = _check_page(page, tmp_path / "demo.html", tmp_path, "report-demo")
    assert len(rec["plots"]) == 10
    assert rec["subjects"] == 3
