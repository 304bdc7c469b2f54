"""Generate docs/cli.md from the commands' own --help, so the reference cannot drift.

    python docs/gen_cli.py --write     # regenerate docs/cli.md
    python docs/gen_cli.py             # print it
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

DOC = Path(__file__).resolve().parent / "cli.md"

INTRO = """# Command line reference

Generated from `--help` by `python docs/gen_cli.py --write` (a test fails when this page and the
real help differ). Exit status of `nndiag check`: 0 when no probe reached `--fail-on`, 1 when one
did or a probe could not run (`error`), 2 when nothing could be checked (a usage error, a file that
does not load, required names missing, or every probe erroring).

Additions to the outside contract's flags keep its meaning for every run that does not use them:
`--autocast off|bf16|fp16` (default off; also `nndiag_config["autocast"]`, `nndiag.check(autocast=)`
and pytest's `--nndiag-autocast`) runs every forward of the check under `torch.autocast`; see
[mixed-precision.md](mixed-precision.md).

Under torchrun, `torchrun --nproc_per_node N -m nndiag check FILE` checks on every rank; rank 0
prints and writes the merged report, and every rank exits with rank 0's status; see
[distributed.md](distributed.md).
"""


def render() -> str:
    """The whole page."""
    from nndiag.cli import main

    parts = [INTRO]
    for args in ([], ["check"], ["probes"]):
        result = CliRunner().invoke(main, [*args, "--help"], prog_name="nndiag", terminal_width=100)
        title = " ".join(["nndiag", *args])
        parts.append(f"## `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    text = render()
    if "--write" in sys.argv:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    else:
        print(text)
