"""A synthetic report that exercises every part of the HTML and CSV writers.

Used by the writer tests, ``benchmarks/report_generation.py`` and to preview the report layout
without running probes (``python -m nndiag.writers.demo out.html``). The numbers are made up but
shaped like the built-in probes' ``data`` (docs/reports.md lists the keys each plot reads).
No torch needed.
"""

from __future__ import annotations

import math
import random
import sys

import dataclasses

from nndiag import chartkit
from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport

EVIL = "<img src=x onerror=alert(1)>"


def _lr_range(rng: random.Random, n: int = 100) -> ProbeResult:
    lrs = [1e-7 * (10 / 1e-7) ** (i / (n - 1)) for i in range(n)]
    losses, smoothed, avg = [], [], 0.0
    for i, lr in enumerate(lrs):
        x = math.log10(lr)
        base = 2.3 - 1.6 / (1 + math.exp(-(x + 4) * 2.2)) + (0 if x < -1 else 4 * (x + 1) ** 2)
        loss = base + rng.gauss(0, 0.05)
        losses.append(loss)
        avg = 0.98 * avg + 0.02 * loss
        smoothed.append(avg / (1 - 0.98 ** (i + 1)))
    return _charted(chartkit.lr_sweep_chart, ProbeResult("lr-range", Status.WARN, "suggested lr 3.2e-4 (steepest descent); configured 0.5 is "
                       "above the range where the loss falls",
                       (Finding(Status.WARN, "The configured learning rate 0.5 is above the largest rate at "
                                "which the loss still fell (0.08).", where="", value=0.5, limit=0.08,
                                metric="configured_lr"),),
                       {"suggested_lr": 3.2e-4, "suggested_max_lr": 0.08, "configured_lr": 0.5, "points": n},
                       {"lrs": lrs, "losses": losses, "smoothed": smoothed}, 1.9))


def _overfit(rng: random.Random, steps: int = 200, fail: bool = False) -> ProbeResult:
    curve = [2.3 * math.exp(-i / (400 if fail else 25)) + (0.9 if fail else 0.002) + abs(rng.gauss(0, 0.01))
             for i in range(steps)]
    status = Status.FAIL if fail else Status.PASS
    findings = (Finding(Status.FAIL, f"Loss went {curve[0]:.3g} -> {curve[-1]:.3g} in {steps} steps; needed "
                        "< 0.05.", value=curve[-1], limit=0.05, metric="final_loss"),) if fail else ()
    settings = ({"name": "steps", "value": steps, "default": 300, "source": "demo: a changed setting",
                 "help": "training steps on the one batch"},
                {"name": "target", "value": 0.05, "default": 0.05, "source": "demo: a default",
                 "help": "the loss to reach"})
    return _charted(chartkit.loss_curve_chart, ProbeResult("overfit", status, f"loss {curve[0]:.3g} -> {curve[-1]:.3g} after {steps} steps",
                       findings, {"initial_loss": curve[0], "final_loss": curve[-1], "steps": steps,
                                  "target": 0.05}, {"loss_curve": curve}, 2.4,
                       description="Can the model fit one fixed batch within a budget?", settings=settings))


def _gradients(names: list[str]) -> ProbeResult:
    layers = []
    for i, n in enumerate(names):
        g = 10 ** (-1.5 - 0.9 * i) if i < len(names) - 1 else 0.0
        layers.append({"param": n, "grad_norm": g, "mean_abs_grad": g / 30, "max_abs_grad": g * 3,
                       "update_ratio": g / 10})
    return _charted(chartkit.gradient_chart, ProbeResult("gradients", Status.FAIL, "1 parameter gets no gradient; 2 vanish",
                       (Finding(Status.FAIL, f"{names[-1]} gets a zero gradient: it is not used in the loss.",
                                where=names[-1], value=0.0, limit=1e-7, metric="grad_norm"),
                        Finding(Status.WARN, f"{names[-2]} gradient norm is tiny.", where=names[-2],
                                value=layers[-2]["grad_norm"], limit=1e-5, metric="grad_norm")),
                       {"max_grad_norm": layers[0]["grad_norm"], "min_grad_norm": 0.0},
                       {"layers": layers, "limits": {"vanishing_limit": 1e-5, "exploding_limit": 1e3}}, 0.2))


def _fractions(probe: str, key: str, names: list[str], fracs: list[float]) -> ProbeResult:
    rows = [{"layer": n, "units": 64, key: f, "activation": "relu" if probe == "dead-neurons" else "sigmoid"}
            for n, f in zip(names, fracs)]
    bad = [r for r in rows if r[key] > 0.5]
    findings = tuple(Finding(Status.FAIL, f"{r['layer']}: {r[key]:.0%} of units are "
                             f"{'dead' if probe == 'dead-neurons' else 'saturated'}.", where=r["layer"],
                             value=r[key], limit=0.5, metric=key) for r in bad)
    result = ProbeResult(probe, Status.FAIL if bad else Status.PASS, f"{len(bad)} layer(s) over the limit",
                         findings, {f"max_{key}": max(fracs)}, {"layers": rows, "limits": {"fail_fraction": 0.5}},
                         0.1)
    title, what = ("Dead units per layer", "dead") if probe == "dead-neurons" else ("Saturated units per layer",
                                                                                   "saturated")
    return _charted(lambda r: chartkit.fraction_chart(r, None, (key, "fraction"), title=title, what=what), result)


def _params(names: list[str]) -> ProbeResult:
    layers = [{"layer": n, "type": "Linear", "trainable": 1000 * (i + 1), "frozen": 0, "shared_with": [],
               "output_shape": [32, 64]} for i, n in enumerate(names)]
    total = sum(l["trainable"] for l in layers)
    return _charted(chartkit.params_table, ProbeResult(
        "params", Status.PASS, f"{total:,} parameters in {len(layers)} layers", (),
        {"total": total, "trainable": total, "frozen": 0, "layers": len(layers)}, {"layers": layers}, 0.05))


def _charted(recipe, result: ProbeResult) -> ProbeResult:
    """``result`` with the chart ``recipe`` makes of it (as a probe's ``charts`` would)."""
    chart = recipe(result)
    return dataclasses.replace(result, charts=(chart,) if chart is not None else ())


def demo_report(n_subjects: int = 2, seed: int = 0, evil: bool = True) -> Report:
    """A report with every probe kind, a broken subject, an error, a skip and (``evil``) a module
    named like an HTML injection."""
    rng = random.Random(seed)
    subjects = []
    for k in range(n_subjects):
        names = ["features.0", "features.3", "classifier.1", EVIL if evil and k == 0 else "classifier.4"]
        results = (
            _params(names),
            ProbeResult("data", Status.PASS, "inputs finite, mean -0.02, std 0.98; 10 classes present",
                        metrics={"input_mean": -0.02, "input_std": 0.98}),
            ProbeResult("nan", Status.PASS, "no NaN/Inf in inputs, parameters, outputs, loss or gradients"),
            _gradients([n + ".weight" for n in names]),
            _fractions("dead-neurons", "dead_fraction", names[:3], [0.02, 0.71, 0.1]),
            _fractions("saturation", "saturated_fraction", names[1:3], [0.05, 0.2]),
            ProbeResult("loss-setup", Status.ERROR, "the loss-setup probe crashed with ValueError: =cmd|' /C calc'!A0",
                        (Finding(Status.ERROR, "the loss-setup probe crashed with ValueError: =cmd|' /C calc'!A0"),),
                        details="Traceback (most recent call last):\n  ...\nValueError: <script>alert(2)</script>"),
            ProbeResult("batch-independence", Status.SKIP, "skipped: the model has batch norm in train mode"),
            _overfit(rng, fail=(k % 2 == 1)),
            _lr_range(rng),
        )
        subjects.append(SubjectReport(f"reference_models/demo_{k}.py", results))
    subjects.append(SubjectReport("reference_models/missing.py", load_error="No such file: missing.py. "
                                  "Check the path."))
    return Report(tuple(subjects))


if __name__ == "__main__":  # pragma: no cover
    from nndiag.writers import html

    out = html.render(demo_report())
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as fh:
            fh.write(out)
    else:
        sys.stdout.write(out)
