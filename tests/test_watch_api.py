"""The watch's API: it changes nothing of the user's, its hooks go away, its report is a Report."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nndiag
import nndiag.watch as nw
from nndiag.errors import UsageError
from watch_helpers import BadBackward, batches, make, train


def _hook_counts(model, opt):
    mods = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) + len(m._backward_hooks)
               for m in model.modules())
    return mods, len(opt._optimizer_step_pre_hooks), len(opt._optimizer_step_post_hooks)


def test_watched_training_is_bitwise_the_plain_training_and_leaves_no_hook():
    plain_model, plain_opt = make(0)
    train(plain_model, plain_opt, 120, 0)
    plain_rng = torch.get_rng_state()

    model, opt = make(0)
    with nw.watch(model, opt, log_every=10, sample_every=7) as w:
        assert _hook_counts(model, opt)[1:] == (1, 1)
        train(model, opt, 120, 0, w)
    assert _hook_counts(model, opt) == (0, 0, 0)
    for a, b in zip(model.state_dict().values(), plain_model.state_dict().values()):
        assert torch.equal(a, b)
    sa, sb = opt.state_dict()["state"], plain_opt.state_dict()["state"]
    assert all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)
    assert torch.equal(torch.get_rng_state(), plain_rng)
    assert w.report.subjects[0].status.value == "pass"


def test_a_model_saved_whole_during_the_watch_carries_no_watch():
    """torch.save(model) inside the watch (a plain loop's checkpoint) pickles the module's hook
    dicts: the watch's hooks are saved as hooks that do nothing, not as the watch itself."""
    import io
    import pickle

    model, opt = make(0)
    plain = io.BytesIO()
    torch.save(model, plain)
    with nw.watch(model, opt, sample_every=2) as w:
        train(model, opt, 4, 0, w)  # a sample is armed: the tracer's hooks are on the model too
        assert _hook_counts(model, opt)[0] >= 2
        saved = io.BytesIO()
        torch.save(model, saved)
        capture = next(iter(model._forward_pre_hooks.values()))  # the watch's own capture hook
    assert saved.tell() < plain.tell() + 2048  # the hooks' names, not a watch with its timeline
    saved.seek(0)
    loaded = torch.load(saved, weights_only=False)
    hooks = [h for m in loaded.modules() for d in (m._forward_pre_hooks, m._forward_hooks)
             for h in d.values()]
    assert hooks and all(h is nw.events.inert_hook for h in hooks)
    x = torch.randn(4, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert isinstance(capture, nw.WatchHook) and b"Watch" not in pickle.dumps(capture)


def _double_step_loop(w, model, opt, steps, data, before_step=None):
    """Two optimizer steps per training step, then ``w.step(loss)``."""
    for step in range(steps):
        if before_step is not None:
            before_step(step)
        for _ in range(2):
            x, y = next(data)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        w.step(loss)


def test_a_second_optimizer_step_in_a_step_keeps_its_full_norms_and_lr():
    """A loop that steps the optimizer twice per step (a GAN's two updates): the step that takes
    full gradient norms (every norm_every-th on the CPU) keeps them, and every step its LR."""
    model, opt = make(0)
    data = batches(0)
    lrs = []
    from nndiag.watch.config import make_config
    from nndiag.watch.core import Watch

    # explicit_steps (as the drivers and callbacks): w.step() closes every step from the first,
    # where a plain watch counts each optimizer step as a step until w.step() is first called
    cfg = make_config(None, None, None, {"log_every": 5, "sample_every": 1000})
    def set_lr(step):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * (1 + step)
        lrs.append(1e-3 * (1 + step))

    with Watch(model, opt, config=cfg, explicit_steps=True, on_event=lambda e: None) as w:
        _double_step_loop(w, model, opt, 20, data, before_step=set_lr)
    tl = w.timeline
    assert w.norm_every == 5
    assert [i for i, m in enumerate(tl.measured) if m] == [0, 5, 10, 15]
    assert tl.lr == lrs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_plain_loop_stepping_twice_per_w_step_counts_one_step_per_w_step(seed):
    """Until the first w.step, the optimizer's post-hook closes every optimizer step; a loop that
    steps twice per w.step had its first iteration counted as two steps, and every later step
    number off by one. The second w.step settles the rhythm and merges them."""
    model, opt = make(seed)
    with nw.watch(model, opt, log_every=5, sample_every=1000) as w:
        _double_step_loop(w, model, opt, 23, batches(seed))
    tl = w.timeline
    assert tl.steps == 23
    assert all(tl.has_loss)
    assert [i for i, m in enumerate(tl.measured) if m] == [0, 5, 10, 15, 20]


def test_a_loop_that_calls_w_step_late_keeps_the_steps_the_hook_counted():
    """Four optimizer steps before the first w.step, then one w.step per optimizer step: the
    rhythm (1 per w.step) is not the hook's (4 before the first), so nothing is merged."""
    model, opt = make(0)
    data = batches(0)
    with nw.watch(model, opt, log_every=5, sample_every=1000) as w:
        for step in range(12):
            x, y = next(data)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            if step >= 3:
                w.step(loss)
    assert w.timeline.steps == 12
    assert w.timeline.has_loss == [False] * 3 + [True] * 9


def test_the_nan_replay_leaves_the_user_rng_and_model_alone():
    model, opt = make(0)
    model.faulty.armed.fill_(1.0)
    torch.manual_seed(5)
    expected = torch.get_rng_state()
    x, y = next(batches(0))
    with nw.watch(model, opt, policy="report") as w:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        w.step(loss)
    assert torch.equal(torch.get_rng_state(), expected)  # the replay ran under a fork
    assert not torch.equal(model.fc1.weight, before["fc1.weight"])  # the user's own step happened
    res = w.report.subjects[0].result("watch.nan")
    assert res.status.value == "fail" and "faulty (Faulty)" in res.findings[0].where


def test_backward_producer_is_named_when_the_loss_can_be_replayed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), BadBackward(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = batches(0)
    current = {}
    with pytest.raises(nw.TrainingStopped) as info:
        with nw.watch(model, opt, on_event=lambda e: None,
                      replay_loss=lambda m, out: F.cross_entropy(out, current["y"])) as w:
            for step in range(30):
                if step == 12:
                    model[2].armed.fill_(1.0)
                x, current["y"] = next(data)
                opt.zero_grad()
                loss = F.cross_entropy(model(x), current["y"])
                loss.backward()
                opt.step()
                w.step(loss)
    ev = info.value.event
    assert ev.step == 12 and ev.where == "2 (BadBackward)" and "gradient produced" in ev.message


def test_without_w_step_the_optimizer_hooks_drive_the_watch():
    model, opt = make(0)
    data = batches(0)
    with nw.watch(model, opt, log_every=5) as w:
        for _ in range(20):
            x, y = next(data)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    tl = w.timeline
    assert tl.steps == 20 and not any(tl.has_loss)
    measured = [g for g, m in zip(tl.grad_norm, tl.measured) if m]
    assert len(measured) == 4 and all(g > 0 for g in measured)  # every 5th step on CPU
    assert "no loss given" in w.report.subjects[0].result("watch.loss").summary


def test_report_goes_through_every_writer_with_timelines():
    from nndiag.writers import csv_writer, html, json_writer

    model, opt = make(0)
    with nw.watch(model, opt, log_every=10, sample_every=10) as w:
        train(model, opt, 60, 0, w)
    report = w.report
    assert report.exit_code() == 0
    d = json.loads(json_writer.render(report))
    ids = [r["probe"] for r in d["results"]]
    assert ids == list(nw.CHECKS[:6]) + ["watch.plateau", "watch.amp"]
    loss = d["results"][1]["data"]["charts"][0]
    assert loss["kind"] == "line" and len(loss["series"][0]["y"]) == 60
    assert "watch.gradients" in csv_writer.render(report)
    page = html.render(report)
    assert page.count("<svg") >= 4  # loss, medians, gradients, units, updates timelines


def test_warn_policy_warns_report_policy_is_silent():
    def dying(step, model, opt):
        if step == 20:
            with torch.no_grad():
                model.fc2.bias -= 1e3

    model, opt = make(0)
    with pytest.warns(nw.WatchWarning, match="watch.units"):
        with nw.watch(model, opt, log_every=10, sample_every=10) as w:
            train(model, opt, 80, 0, w, dying)
    model, opt = make(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with nw.watch(model, opt, log_every=10, sample_every=10, policy="report") as w:
            train(model, opt, 80, 0, w, dying)
    assert w.report.subjects[0].result("watch.units").status.value == "fail"
    assert w.report.exit_code() == 1


def test_minimal_profile_runs_only_the_every_step_checks_and_samples_nothing():
    model, opt = make(0)
    with nw.watch(model, opt, profile="minimal", sample_every=1) as w:
        assert _hook_counts(model, opt)[0] == 1  # only the input capture for the replay
        train(model, opt, 30, 0, w)
    assert [r.probe for r in w.report.subjects[0].results] == ["watch.nan", "watch.loss",
                                                               "watch.gradients", "watch.amp"]
    assert w.timeline.samples == []


def test_under_bf16_autocast_a_healthy_run_is_healthy():
    model, opt = make(0)
    data = batches(0)
    with nw.watch(model, opt, log_every=10, sample_every=10) as w:
        for _ in range(60):
            x, y = next(data)
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            w.step(loss)
    assert w.report.subjects[0].status.value == "pass", [
        (r.probe, r.summary) for r in w.report.subjects[0].results]


def test_parameter_missing_from_the_optimizer_is_reported_at_step_0():
    model, _ = make(0)
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if not n.startswith("fc3")])
    with nw.watch(model, opt, on_event=lambda e: None) as w:
        train(model, opt, 10, 0, w)
    f = w.report.subjects[0].result("watch.updates").findings
    assert {x.where for x in f} == {"fc3.weight", "fc3.bias"} and "no parameter group" in f[0].message


@pytest.mark.parametrize("kwargs, words", [
    (dict(model="not a model"), "torch.nn.Module"),
    (dict(log_every=0), "positive integer"),
    (dict(lr_typo=3), "unknown setting"),
    (dict(policy={"nan": "explode"}), "report, warn or stop"),
    (dict(policy={"bogus": "warn"}), "unknown check"),
    (dict(profile="fast"), "profile"),
])
def test_bad_arguments_get_a_message_and_a_hint(kwargs, words):
    model, opt = make(0)
    args = (kwargs.pop("model", model), opt)
    with pytest.raises(UsageError) as info:
        nw.watch(*args, **kwargs)
    assert words in str(info.value) + (info.value.hint or "")


def test_nndiag_watch_is_the_function_and_the_module():
    model, opt = make(0)
    with nndiag.watch(model, opt) as w:
        pass
    assert isinstance(w, nndiag.watch.Watch) and nndiag.watch.TrainingStopped is nw.TrainingStopped
