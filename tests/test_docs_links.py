"""Docs and threshold sources cite only what a user of a git clone or a wheel can open.

Internal design files (prior-art.md, watch-prior-art.md, architecture-review.md), the developers'
shared folder, internal issue numbers and the tutorials' private folder names mean nothing to a
reader outside the project: a citation names the tool or paper (with a public link), or the page
of this repository that holds the measurement.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each pattern with the reason it is unreadable for a user.
FORBIDDEN = [
    (re.compile(r"prior-art\.md"), "an internal design file: cite the tool or paper by name"),
    (re.compile(r"architecture-review"), "an internal design file"),
    (re.compile(r"shared/"), "the developers' shared folder: users do not have it"),
    (re.compile(r"issue #"), "an internal issue number: cite the measurement page instead"),
    (re.compile(r"\bissues? \d"), "an internal issue number: cite the measurement page instead"),
    (re.compile(r"tutorials/0"), "a private tutorial folder: name or describe the tutorial"),
]


def unreadable_citations(text: str) -> list[str]:
    """Each forbidden citation in ``text``, as 'line N: <match> (<why>)'."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, why in FORBIDDEN:
            for match in pattern.finditer(line):
                found.append(f"line {number}: {match.group(0)!r} ({why})")
    return found


def _doc_files() -> list[Path]:
    return sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]


def _threshold_sources() -> list[tuple[str, str]]:
    """(probe.setting, source) for every built-in probe's and the watch's settings."""
    from nndiag.plugins import DEFAULT_PROBE_PLUGINS, collect_probes, get_plugin_manager
    from nndiag.probe import config_sources
    from nndiag.watch.config import WatchConfig

    specs = collect_probes(get_plugin_manager(load_entry_points=False))
    out = [(f"{spec.id}.{row['name']}", row["source"])
           for spec in specs.values() if spec.plugin in DEFAULT_PROBE_PLUGINS
           for row in config_sources(spec.cls)]
    out += [(f"watch.{f.name}", f.metadata.get("source", ""))
            for f in dataclasses.fields(WatchConfig)]
    return out


def test_the_scanner_catches_each_kind_of_citation():
    # Guards the patterns themselves: a pattern that stopped matching would pass every doc.
    for bad in ("see prior-art.md", "watch-prior-art.md §4", "issue #2", "issue 9 counted",
                "NNDIAG_DATA_DIR=../shared/data", "tutorials/002", "architecture-review.md"):
        assert unreadable_citations(bad), bad
    assert not unreadable_citations(
        "Lightning https://github.com/Lightning-AI/pytorch-lightning/issues/12344; torchinfo #322; "
        "measured on the zoo (docs/probes/overfit.md)")


@pytest.mark.parametrize("path", _doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_cite_only_what_a_user_can_open(path):
    found = unreadable_citations(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)}: " + "; ".join(found)


def test_threshold_sources_cite_only_what_a_user_can_open():
    sources = _threshold_sources()
    assert len(sources) > 50  # the built-in probes and the watch were all read
    bad = [f"{name}: {hit}" for name, source in sources for hit in unreadable_citations(source)]
    assert not bad, "\n".join(bad)
