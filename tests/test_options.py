"""One options definition (nndiag.options): the API, the helpers, the pytest fixture and options,
the CLI and ``nndiag_config`` validation are all derived from RunOptions, so none can drift.

The regression that started it: ``threads=`` was missing from the helpers' hand-kept keyword
list, so ``nndiag.check(..., threads=1)`` raised TypeError in the fixture and every helper.
"""

from __future__ import annotations

import inspect
import types

import pytest

import nndiag
from nndiag import options, testing
from nndiag.errors import UsageError

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402


def test_check_keywords_are_exactly_the_api_keywords():
    params = inspect.signature(nndiag.check).parameters
    named = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert named == set(options.CHECK_KEYWORDS)
    assert {"threads", "plugins", "seed", "device"} <= options.CHECK_KEYWORDS


def test_cli_flags_come_from_the_options():
    from nndiag.cli import check

    flags = {opt for p in check.params for opt in getattr(p, "opts", ())}
    for f in options.run_option_fields():
        if f.metadata["cli"]:
            assert f.metadata["cli"] in flags
            param = next(p for p in check.params if f.metadata["cli"] in p.opts)
            assert param.help.startswith(f.metadata["help"])


def test_merge_options_takes_every_run_option():
    assert options.merge_options({"seed": 0}, {"threads": 1}) == {"seed": 0, "threads": 1}
    assert testing.merge_options is options.merge_options  # one copy
    with pytest.raises(TypeError, match="per-probe settings must be a dict"):
        options.merge_options({"thread": 1})  # a typo is still caught


def test_run_options_from_keywords():
    opts = options.run_options(overfit={"steps": 5}, settings={"overfit": {"lr": 0.1}}, threads=2,
                               plugins=[types], seed=None)
    assert opts.settings == {"overfit": {"steps": 5, "lr": 0.1}} and opts.threads == 2
    assert opts.extra_plugins == (types,) and opts.seed is None


def test_file_config_keys_are_derived():
    assert {"probes", "skip", "seed", "device", "weights"} <= options.CONFIG_KEYS
    assert options.CONFIG_KEYS == {f.name for f in options.run_option_fields() if f.metadata["in_file"]}
    with pytest.raises(UsageError, match="unknown key"):
        options.validate_file_config({"sed": 1}, "m.py", ["params"])
    assert options.validate_file_config({"probes": "params"}, "m.py", ["params"]) == {"probes": ["params"]}


def _thread_listener(seen):
    mod = types.ModuleType("thread_listener")

    @nndiag.hookimpl
    def nndiag_probe_finished(subject, result):
        seen.append(torch.get_num_threads())  # called inside the run's torch_threads block

    mod.nndiag_probe_finished = nndiag_probe_finished
    return mod


HELPERS = [n for n in testing.__all__ if n.startswith("assert_") and n != "assert_report_ok"]


@pytest.mark.parametrize("name", HELPERS)
def test_every_helper_accepts_threads(name):
    seen: list[int] = []
    before = torch.get_num_threads()
    want = 2 if before != 2 else 3
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    batch = (torch.randn(8, 4), torch.randint(0, 2, (8,)))
    helper = getattr(testing, name)
    extra = {"assert_overfits": {"overfit": {"steps": 3}},
             "assert_lr_in_range": {"lr_range": {"num_it": 8}}}.get(name, {})  # keep them quick
    try:
        helper(model, batch=batch, loss_fn=nn.CrossEntropyLoss(), threads=want,
               plugins=[_thread_listener(seen)], allow_skip=True, **extra)
    except testing.NndiagAssertionError:
        pass  # a verdict is fine; a TypeError about threads= is the bug
    assert seen == [want]
    assert torch.get_num_threads() == before


def test_fixture_and_session_option_take_threads(pytester):
    pytester.makepyfile(test_t='''
        import torch
        from torch import nn

        def test_threads(nndiag):
            assert nndiag.options()["threads"] == 2
            report = nndiag.check(model=nn.Linear(4, 2), batch=(torch.randn(8, 4), torch.randint(0, 2, (8,))),
                                  loss_fn=nn.CrossEntropyLoss(), probes=["params"], threads=1)
            assert report.subjects[0].result("params").status.value == "pass"
    ''')
    result = pytester.runpytest("--nndiag-threads", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
