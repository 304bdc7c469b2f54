"""Make the screenshot set in docs/img from a real run (the HTML report, the terminal at 80 and 200
columns, a notebook cell), so the pictures in the docs show what nndiag really prints.

    OMP_NUM_THREADS=1 python docs/gen_screenshots.py          # from the repository root

Runs ``nndiag check reference_models/broken/mlp_detached_layer.py reference_models/xor.py`` once
(JSON and HTML reports), renders the terminal summary from that report at 80 and 200 columns (the
same ``nndiag.writers.text`` the CLI prints with) into PNGs with matplotlib's monospace font, and
shoots the HTML report and a notebook with headless Chromium (``apt-get install chromium``). The
notebook is docs/examples/notebook.py executed with nbclient and exported with nbconvert when they
are installed, else a page laid out like a cell (its ``print(report)`` and ``_repr_html_`` output).
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


def _blank_bottom(path: Path) -> bool:
    """True when the lower half of the image is one flat colour (an iframe not painted yet)."""
    from PIL import Image

    with Image.open(path) as im:
        grey = im.convert("L")
        w, h = grey.size
        region = grey.crop((w // 6, int(h * 0.65), w - w // 6, h - 10))
    return len(region.getcolors(maxcolors=4096) or range(4096)) < 20  # text has many grey levels


def chromium_png(url: str, path: Path, size: str, tries: int = 4) -> None:
    """A headless-Chromium screenshot of ``url``. Headless Chromium sometimes shoots before an
    ``<iframe srcdoc>`` (the notebook's inline report) is painted: retried until it is there."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    for _ in range(tries):
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--hide-scrollbars", "--virtual-time-budget=8000", f"--screenshot={path}",
                        f"--window-size={size}", url], check=True, capture_output=True, timeout=300)
        if not _blank_bottom(path):
            return
    print(f"warning: {path.name}: the lower half stayed blank after {tries} tries", file=sys.stderr)


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


def percent_cells(path: Path) -> list[tuple[str, str]]:
    """``(kind, source)`` of each ``# %%`` cell of a percent-format script (``markdown`` or ``code``)."""
    cells: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif cells:
            cells[-1][1].append(line)
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        out.append((kind, "\n".join(lines).strip()))
    return out


def executed_notebook_html(out: Path) -> Path | None:
    """docs/examples/notebook.py as a Jupyter notebook, executed with nbclient (ipykernel) and
    exported with nbconvert; None when those are not installed (``pip install nbconvert
    nbclient ipykernel``)."""
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    nb = nbformat.v4.new_notebook()
    for kind, source in percent_cells(REPO / "docs" / "examples" / "notebook.py"):
        if "help(nndiag)" in source:  # a screen of help text: keep the picture on the report
            source = source.replace("help(nndiag)", "print(nndiag.__all__)")
        nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                        else nbformat.v4.new_code_cell(source))
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page = out / "notebook-nbconvert.html"
    page.write_text(body, encoding="utf-8")
    return page


def main() -> None:
    from nndiag.writers import text

    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        report = run_check(out)
        for columns in (80, 200):
            terminal_png(text.render(report, width=columns), columns, IMG / f"terminal-{columns}.png")
        chromium_png((out / "report.html").as_uri(), IMG / "html-report.png", "1200,2000")
        page = executed_notebook_html(out)
        if page is None:  # no nbconvert: a cell's print(report) and _repr_html_, laid out by hand
            page = out / "notebook.html"
            notebook_page(report, page)
        chromium_png(page.as_uri(), IMG / "notebook.png", "1200,1600")
    for name in ("terminal-80.png", "terminal-200.png", "html-report.png", "notebook.png"):
        print(IMG / name)


if __name__ == "__main__":
    main()
