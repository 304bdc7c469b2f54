"""Print the Markdown table of every built-in probe's settings (default and source).

    python docs/gen_thresholds.py           # print the table
    python docs/gen_thresholds.py --write   # update docs/probes/README.md in place

The table is read from the probes' ``Config`` dataclasses (``nndiag.probe.config_sources``), so
it cannot disagree with the code; tests/test_docs.py fails when docs/probes/README.md is stale.
Only the built-in probes are listed (entry-point plugins installed on this machine are not).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent / "probes" / "README.md"
START = "<!-- thresholds:start -->"
END = "<!-- thresholds:end -->"


def format_default(value: Any) -> str:
    """A default as it would be written in ``nndiag_config`` (Python syntax)."""
    if isinstance(value, float) and not isinstance(value, bool):
        text = repr(value)
        return format(value, "g") if len(text) > 8 else text
    return repr(value)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render() -> str:
    """The table (without the markers), one row per setting, probes in the contract's order."""
    from nndiag.plugins import DEFAULT_PROBE_PLUGINS as DEFAULT_PLUGINS, collect_probes, get_plugin_manager
    from nndiag.probe import config_sources

    specs = collect_probes(get_plugin_manager(load_entry_points=False))
    order = {name: i for i, name in enumerate(DEFAULT_PLUGINS)}
    builtin = sorted((s for s in specs.values() if s.plugin in order), key=lambda s: order[s.plugin])
    lines = [
        "| probe | setting | default | meaning | source of the default |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in builtin:
        rows = config_sources(spec.cls)
        link = f"[`{spec.id}`]({spec.id}.md)"
        if not rows:
            lines.append(f"| {link} | (none) | | | |")
        for row in rows:
            lines.append(
                f"| {link} | `{row['name']}` | `{format_default(row['default'])}` | "
                f"{_cell(row['help'])} | {_cell(row['source'])} |"
            )
    return "\n".join(lines) + "\n"


def splice(document: str, table: str) -> str:
    """``document`` with the text between the markers replaced by ``table``."""
    if START not in document or END not in document:
        raise SystemExit(f"{README} lacks the markers {START} / {END}.")
    head, rest = document.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def current(document: str) -> str:
    """The table now between the markers of ``document``."""
    return document.split(START, 1)[1].split(END, 1)[0].lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {README.name} in place")
    args = parser.parse_args(argv)
    table = render()
    if not args.write:
        sys.stdout.write(table)
        return 0
    old = README.read_text(encoding="utf-8")
    new = splice(old, table)
    if new != old:
        README.write_text(new, encoding="utf-8")
        print(f"updated {README}")
    else:
        print(f"{README} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
