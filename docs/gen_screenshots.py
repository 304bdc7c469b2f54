"""Make the screenshot set in docs/img from a real run (the HTML report, the terminal at 80 and 200
columns, a notebook cell), so the pictures in the docs show what nndiag really prints.

    OMP_NUM_THREADS=1 python docs/gen_screenshots.py          # from the repository root

Runs ``nndiag check reference_models/broken/mlp_detached_layer.py reference_models/xor.py`` once
(JSON and HTML reports), renders the terminal summary from that report at 80 and 200 columns (the
same ``nndiag.writers.text`` the CLI prints with) into PNGs with matplotlib's monospace font, and
shoots the HTML report and a notebook-style page (a cell's ``print(report)`` and the inline
``_repr_html_`` output) with headless Chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "docs" / "img"
FILES = ["reference_models/broken/mlp_detached_layer.py", "reference_models/xor.py"]
COMMAND = ["nndiag", "check", *FILES]


def run_check(out: Path) -> "object":
    """Run the check once; the Report (rebuilt from its JSON) and the HTML report's path."""
    from nndiag.report import Report

    env = {k: v for k, v in os.environ.items() if not k.startswith("NNDIAG_")}
    env.setdefault("OMP_NUM_THREADS", "1")
    exe = shutil.which("nndiag") or sys.executable
    args = [exe, *COMMAND[1:]] if exe != sys.executable else [exe, "-m", "nndiag.cli", *COMMAND[1:]]
    subprocess.run(args + ["--json", str(out / "report.json"), "--html", str(out / "report.html")],
                   cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    return Report.from_dict(json.loads((out / "report.json").read_text(encoding="utf-8")))


def terminal_png(text: str, columns: int, path: Path) -> None:
    """``text`` drawn as a terminal window of ``columns`` columns (light grey on near-black)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import textwrap

    prompt = textwrap.wrap(f"$ {' '.join(COMMAND)}", width=columns, subsequent_indent="    ")
    lines = prompt + text.rstrip("\n").splitlines()
    char_w, line_h, dpi = 0.0834, 0.165, 110  # inches per character (0.6 em) / line at 10 pt DejaVu Sans Mono
    width, height = columns * char_w + 0.3, len(lines) * line_h + 0.3
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    fig.patch.set_facecolor("#1e1e1e")
    colours = {"FAIL": "#ff6b6b", "ERROR": "#ff6b6b", "WARN": "#f0c674", "pass": "#8fd18f", "skip": "#9aa0a6"}
    for i, line in enumerate(lines):
        y = 1 - (0.15 + (i + 0.8) * line_h) / height
        colour = "#d4d4d4"
        for word, c in colours.items():
            if f"  {word} " in line[:40] or line.endswith(f": {word.upper()}") or f": {word.upper()} (" in line:
                colour = c
        if i < len(prompt):
            colour = "#7fb3ff"
        fig.text(0.15 / width, y, line, family="DejaVu Sans Mono", fontsize=10, color=colour, va="baseline")
    fig.savefig(path, dpi=dpi, facecolor=fig.get_facecolor())
    plt.close(fig)


def chromium_png(url: str, path: Path, size: str) -> None:
    """A headless-Chromium screenshot of ``url``."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--hide-scrollbars", f"--screenshot={path}", f"--window-size={size}", url],
                   check=True, capture_output=True, timeout=300)


def notebook_page(report, path: Path) -> None:
    """A page laid out like a Jupyter cell: the code, its printed output, then the inline report."""
    import html

    code = ('import nndiag\n\nreport = nndiag.check("reference_models/xor.py")\n'
            "print(report)\nreport   # the last line of a cell: the HTML report, inline")
    xor = type(report)(tuple(s for s in report.subjects if s.subject.endswith("xor.py")), report.metadata)
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body{{font-family:system-ui,sans-serif;margin:16px;background:#fff;color:#111}}
.cell{{display:flex;gap:8px;margin:6px 0}} .prompt{{width:70px;color:#303f9f;font-family:monospace;text-align:right}}
.out .prompt{{color:#d84315}} pre{{margin:0;font-size:13px}} .code{{background:#f5f5f5;border:1px solid #e0e0e0;
padding:6px;flex:1}} .body{{flex:1;overflow:hidden}}</style></head><body>
<div class="cell"><div class="prompt">In&nbsp;[1]:</div><div class="code"><pre>{html.escape(code)}</pre></div></div>
<div class="cell out"><div class="prompt"></div><div class="body"><pre>{html.escape(str(xor))}</pre></div></div>
<div class="cell out"><div class="prompt">Out[1]:</div><div class="body">{xor._repr_html_()}</div></div>
</body></html>"""
    path.write_text(page, encoding="utf-8")


def main() -> None:
    from nndiag.writers import text

    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        report = run_check(out)
        for columns in (80, 200):
            terminal_png(text.render(report, width=columns), columns, IMG / f"terminal-{columns}.png")
        chromium_png((out / "report.html").as_uri(), IMG / "html-report.png", "1200,2000")
        notebook_page(report, out / "notebook.html")
        chromium_png((out / "notebook.html").as_uri(), IMG / "notebook.png", "1200,1400")
    for name in ("terminal-80.png", "terminal-200.png", "html-report.png", "notebook.png"):
        print(IMG / name)


if __name__ == "__main__":
    main()
