"""The generated parts of the docs match the code, so they cannot drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "docs" / "gen_thresholds.py"


def _gen():
    spec = importlib.util.spec_from_file_location("_nndiag_gen_thresholds", GEN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_threshold_table_is_up_to_date():
    gen = _gen()
    document = gen.README.read_text(encoding="utf-8")
    assert gen.START in document and gen.END in document, f"{gen.README} lost its threshold markers"
    assert gen.current(document) == gen.render(), (
        "docs/probes/README.md's threshold table is out of date with the probes' Config classes: "
        "run `python docs/gen_thresholds.py --write`."
    )


def test_threshold_table_lists_every_builtin_setting():
    import dataclasses

    from nndiag.plugins import DEFAULT_PROBE_PLUGINS as DEFAULT_PLUGINS, collect_probes, get_plugin_manager

    table = _gen().render()
    specs = collect_probes(get_plugin_manager(load_entry_points=False))
    builtin = [s for s in specs.values() if s.plugin in DEFAULT_PLUGINS]
    assert len(builtin) == len(DEFAULT_PLUGINS)
    for spec in builtin:
        for field in dataclasses.fields(spec.cls.Config):
            assert f"| [`{spec.id}`]({spec.id}.md) | `{field.name}` |" in table
            assert field.metadata.get("source"), f"{spec.id}.{field.name} cites no source"


def test_splice_replaces_only_between_markers():
    gen = _gen()
    doc = f"intro\n{gen.START}\nold table\n{gen.END}\noutro\n"
    assert gen.splice(doc, "| new |\n") == f"intro\n{gen.START}\n| new |\n{gen.END}\noutro\n"
    with pytest.raises(SystemExit):
        gen.splice("no markers here", "| new |\n")


@pytest.mark.parametrize("page", ["params", "data", "nan", "gradients", "dead-neurons", "saturation",
                                  "loss-setup", "overfit", "lr-range", "updates", "batch-independence"])
def test_every_probe_has_a_page(page):
    assert (ROOT / "docs" / "probes" / f"{page}.md").is_file(), f"docs/probes/{page}.md is missing"
