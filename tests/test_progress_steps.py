"""The progress line shows the running probe's time and step, keeps ticking during a long probe,
and is erased when the run ends (the summary table must not start after a stale bar)."""

import io
import time

from nndiag import progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_steps_ticks_and_erased(monkeypatch):
    fake = FakeTTY()
    monkeypatch.setattr(progress, "SHOW_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(progress, "TICK_SECONDS", 0.05)
    with progress.progress_display(stream=fake) as update:
        update("model.py", "lr-range", 10, 11)
        progress.note_step("sweep step 40/100")
        time.sleep(0.3)  # no update from the runner: the ticker redraws the line
    out = fake.getvalue()
    assert "model.py: 10/11 probes done; lr-range (0 s, sweep step 40/100)" in out
    assert out.count("\r") >= 4  # drawn several times while the probe ran
    last = out.rsplit("\r", 2)
    assert last[-1] == "" and last[-2].strip() == ""  # ends by blanking the line, cursor at its start
    assert "ETA" not in out and "<" not in out  # no count-based time estimate


def test_a_new_probe_clears_the_step(monkeypatch):
    fake = FakeTTY()
    monkeypatch.setattr(progress, "SHOW_AFTER_SECONDS", 0.0)
    with progress.progress_display(stream=fake) as update:
        update("m.py", "overfit", 0, 2)
        progress.note_step("step 7/300")
        update("m.py", "nan", 1, 2)
    assert fake.getvalue().rsplit("\r", 3)[-3].startswith("m.py: 1/2 probes done; nan (0 s)")


def test_every_training_step_ticks_the_progress_note():
    """The one training step (Workbench.step) counts itself, so a long probe shows its steps."""
    import torch
    import torch.nn as nn

    from nndiag import activity
    from nndiag.subject import Subject
    from nndiag.workbench import Workbench

    batch = (torch.randn(8, 3), torch.randint(0, 2, (8,)))
    bench = Workbench(Subject("s", model_factory=lambda: nn.Linear(3, 2), batches=lambda: [batch],
                              loss_fn=nn.CrossEntropyLoss()))
    model = bench.fresh_model()
    opt = bench.make_optimizer(model)
    activity.reset()
    for _ in range(3):
        bench.train_one_step(model, opt, batch)
    assert activity.current() == "training step 3"
    activity.reset()
    assert activity.current() == ""
