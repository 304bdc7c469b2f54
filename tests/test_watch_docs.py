"""docs/watch.md keeps up with the code: the thresholds table and every check id."""

from pathlib import Path

from nndiag.watch.config import CHECKS, threshold_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "watch.md"


def test_thresholds_table_matches_watch_config():
    assert threshold_table() in DOC.read_text(), \
        "regenerate the table: python -c 'from nndiag.watch.config import threshold_table; print(threshold_table())'"


def test_every_check_is_documented_and_the_screenshot_exists():
    text = DOC.read_text()
    for check in CHECKS:
        assert f"`{check}`" in text, check
    assert (DOC.parent / "img" / "watch-report.png").stat().st_size > 10_000
