"""Hand-built reports for the writer tests (no torch): every status, a grouped cause, a source
line, a load error, text that needs escaping."""

from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport

META = {"nndiag": "0.1.0", "torch": "2.14.1", "python": "3.11.9", "platform": "Linux", "device": "cpu",
        "threads": 1, "seed": 0, "command": ["nndiag", "check", "model.py"],
        "started": "2026-12-02T05:00:00+00:00", "hostname": "ci-runner",
        "files": [{"path": "model.py", "sha256": "ab" * 32}]}


def finding(severity, message, where="", file="", line=None):
    f = Finding(Status(severity), message, where)
    if hasattr(f, "file"):  # the source-line fields, where the report has them
        import dataclasses

        f = dataclasses.replace(f, file=file, line=line)
    return f


def sample_report(with_meta=True) -> Report:
    detached = [finding("fail", f"{p} requires grad but gets no gradient: it is not connected to the loss.",
                        p, "model.py", 12) for p in ("fc1.weight", "fc1.bias")]
    results = (
        ProbeResult("params", Status.PASS, "33 parameters", (), {"total": 33}, seconds=0.01),
        ProbeResult("gradients", Status.FAIL, "no gradient reaches fc1.weight, fc1.bias", tuple(detached),
                    seconds=0.2),
        ProbeResult("dead-neurons", Status.WARN, "2 of 8 units dead",
                    (finding("warn", "2 of 8 units <never> fire & \"so\" 100% dead,\nsee: fc1", "fc1 (Linear)"),),
                    seconds=0.05),
        ProbeResult("nan", Status.ERROR, "loss_fn raised ValueError: bad \x07 shape",
                    (finding("error", "loss_fn raised ValueError: bad \x07 shape"),), seconds=0.0,
                    details="Traceback (most recent call last):\n  ...\nValueError: bad shape"),
        ProbeResult("saturation", Status.SKIP, "skipped: no sigmoid", seconds=0.0),
    )
    report = Report((SubjectReport("model.py", results), SubjectReport("broken.py", load_error="broken.py: SyntaxError at line 3")))
    if with_meta and "metadata" in getattr(Report, "__dataclass_fields__", {}):
        import dataclasses

        report = dataclasses.replace(report, metadata=META)
    return report
