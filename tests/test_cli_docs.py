"""docs/cli.md is the commands' real --help (regenerate with `python docs/gen_cli.py --write`)."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cli_reference_matches_help():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (DOCS / "cli.md").read_text() == gen.render(), \
        "docs/cli.md is out of date: run `python docs/gen_cli.py --write`"
