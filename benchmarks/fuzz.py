"""Generated models: random but well-formed model files, every probe run on each (issue 14).

A hypothesis strategy draws a model file: depth, widths, Linear/Conv/RNN/Embedding/attention/
normalisation mixes, module or functional activations, residual paths, tensor/tuple/dict inputs,
float32/float64, a classification, regression or binary head, and its data from ``sample_batch``
or a ``train_loader``. Every file is well formed, so every probe must end in pass, warn, fail or
skip: a probe ``error`` (a crash), an exception out of ``nndiag.check`` or a probe stopped at the
time limit (a hang) is a bug.

    python benchmarks/fuzz.py --examples 500            # prints crashes, errors, hangs, verdicts

``tests/test_generated_models.py`` runs the same strategy on a small budget in CI.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

ACTS = {  # name -> (module expression, functional expression of `h`)
    "relu": ("nn.ReLU()", "F.relu({})"),
    "gelu": ("nn.GELU()", "F.gelu({})"),
    "tanh": ("nn.Tanh()", "torch.tanh({})"),
    "silu": ("nn.SiLU()", "F.silu({})"),
    "leaky": ("nn.LeakyReLU(0.1)", "F.leaky_relu({}, 0.1)"),
    "sigmoid": ("nn.Sigmoid()", "torch.sigmoid({})"),
    "elu": ("nn.ELU()", "F.elu({})"),
}


@dataclass
class ModelFile:
    """A generated model file: its source and what it is made of (for the report)."""

    source: str
    parts: list[str] = field(default_factory=list)


class _Builder:
    """Accumulates ``__init__`` and ``forward`` lines while the representation changes."""

    def __init__(self) -> None:
        self.init: list[str] = []
        self.fwd: list[str] = []
        self.n = 0
        self.parts: list[str] = []

    def layer(self, expr: str) -> str:
        self.n += 1
        name = f"l{self.n}"
        self.init.append(f"self.{name} = {expr}")
        return f"self.{name}"

    def act(self, draw, h: str) -> None:
        name = draw(st.sampled_from(sorted(ACTS)))
        module, functional = ACTS[name]
        if draw(st.booleans()):
            self.fwd.append(f"{h} = {self.layer(module)}({h})")
            self.parts.append(f"{name}(module)")
        else:
            self.fwd.append(f"{h} = {functional.format(h)}")
            self.parts.append(f"{name}(functional)")


def _vector_block(draw, b: _Builder, width: int) -> int:
    w = draw(st.integers(2, 32))
    residual = w == width and draw(st.booleans())
    norm = draw(st.sampled_from(["none", "layer", "batch"]))
    src = "h"
    if residual:
        b.fwd.append(f"r = {src}")
    b.fwd.append(f"h = {b.layer(f'nn.Linear({width}, {w})')}(h)")
    b.parts.append(f"Linear({width},{w})")
    if norm == "layer":
        b.fwd.append(f"h = {b.layer(f'nn.LayerNorm({w})')}(h)")
        b.parts.append("LayerNorm")
    elif norm == "batch":
        b.fwd.append(f"h = {b.layer(f'nn.BatchNorm1d({w})')}(h)")
        b.parts.append("BatchNorm1d")
    b.act(draw, "h")
    if draw(st.booleans()):
        b.fwd.append(f"h = {b.layer('nn.Dropout(0.1)')}(h)")
        b.parts.append("Dropout")
    if residual:
        b.fwd.append("h = h + r")
        b.parts.append("residual")
    return w


def _image_blocks(draw, b: _Builder, channels: int, size: int) -> int:
    for _ in range(draw(st.integers(1, 3))):
        w = draw(st.integers(2, 12))
        residual = w == channels and draw(st.booleans())
        if residual:
            b.fwd.append("r = h")
        b.fwd.append(f"h = {b.layer(f'nn.Conv2d({channels}, {w}, 3, padding=1)')}(h)")
        b.parts.append(f"Conv2d({channels},{w})")
        norm = draw(st.sampled_from(["none", "batch", "group"]))
        if norm == "batch":
            b.fwd.append(f"h = {b.layer(f'nn.BatchNorm2d({w})')}(h)")
            b.parts.append("BatchNorm2d")
        elif norm == "group":
            b.fwd.append(f"h = {b.layer(f'nn.GroupNorm(1, {w})')}(h)")
            b.parts.append("GroupNorm")
        b.act(draw, "h")
        if residual:
            b.fwd.append("h = h + r")
            b.parts.append("residual")
        channels = w
    if draw(st.booleans()):
        b.fwd.append("h = h.flatten(1)")
        b.parts.append("flatten")
        return channels * size * size
    b.fwd.append(f"h = {b.layer('nn.AdaptiveAvgPool2d(1)')}(h).flatten(1)")
    b.parts.append("avgpool")
    return channels


def _sequence_blocks(draw, b: _Builder, d: int) -> int:
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["gru", "lstm", "rnn", "attention", "transformer"]))
        if kind in ("gru", "lstm", "rnn"):
            w = draw(st.integers(2, 16))
            cls = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN"}[kind]
            b.fwd.append(f"h, _ = {b.layer(f'nn.{cls}({d}, {w}, batch_first=True)')}(h)")
            b.parts.append(f"{cls}({d},{w})")
            d = w
        elif kind == "attention":
            heads = 2 if d % 2 == 0 else 1
            attn = b.layer(f"nn.MultiheadAttention({d}, {heads}, batch_first=True)")
            norm = b.layer(f"nn.LayerNorm({d})")
            b.fwd.append(f"a, _ = {attn}(h, h, h)")
            b.fwd.append(f"h = {norm}(h + a)")
            b.parts.append(f"MultiheadAttention({d},{heads})+residual+LayerNorm")
        else:
            heads = 2 if d % 2 == 0 else 1
            b.fwd.append(f"h = {b.layer(f'nn.TransformerEncoderLayer({d}, {heads}, dim_feedforward={2 * d}, dropout=0.0, batch_first=True)')}(h)")
            b.parts.append(f"TransformerEncoderLayer({d},{heads})")
    if draw(st.booleans()):
        b.fwd.append("h = h.mean(1)")
        b.parts.append("mean-pool")
    else:
        b.fwd.append("h = h[:, -1]")
        b.parts.append("last-step")
    return d


@st.composite
def model_files(draw) -> ModelFile:
    """A random, well-formed model file (see the module docstring)."""
    b = _Builder()
    kind = draw(st.sampled_from(["vector", "image", "tokens", "sequence"]))
    wrap = draw(st.sampled_from(["tensor", "tuple", "dict"]))
    head = draw(st.sampled_from(["classes", "regression", "binary"]))
    dtype = draw(st.sampled_from(["float32", "float32", "float64"]))
    batch = draw(st.integers(4, 32))
    source = draw(st.sampled_from(["sample_batch", "train_loader"]))
    b.parts += [kind, wrap, head, dtype, source]
    fl = ".double()" if dtype == "float64" else ""

    if kind == "vector":
        f = draw(st.integers(2, 16))
        x = f"torch.randn({batch}, {f}, generator=g){fl}"
        width = f
    elif kind == "image":
        c, size = draw(st.integers(1, 3)), draw(st.integers(4, 8))
        x = f"torch.randn({batch}, {c}, {size}, {size}, generator=g){fl}"
        width = _image_blocks(draw, b, c, size)
    elif kind == "tokens":
        vocab, t, d = draw(st.integers(5, 20)), draw(st.integers(2, 8)), draw(st.integers(2, 16))
        x = f"torch.randint(0, {vocab}, ({batch}, {t}), generator=g)"
        b.fwd.append(f"h = {b.layer(f'nn.Embedding({vocab}, {d})')}(h)")
        b.parts.append(f"Embedding({vocab},{d})")
        width = _sequence_blocks(draw, b, d)
    else:
        t, f = draw(st.integers(2, 8)), draw(st.integers(2, 12))
        x = f"torch.randn({batch}, {t}, {f}, generator=g){fl}"
        width = _sequence_blocks(draw, b, f)
    for _ in range(draw(st.integers(0 if kind != "vector" else 1, 3))):
        width = _vector_block(draw, b, width)

    extra = wrap != "tensor"
    if extra:
        b.fwd.append("h = torch.cat([h, z], dim=1)")
        width += 2
    if head == "classes":
        classes = draw(st.integers(2, 5))
        out, y, loss = classes, f"torch.randint(0, {classes}, ({batch},), generator=g)", "nn.CrossEntropyLoss()"
    elif head == "regression":
        k = draw(st.integers(1, 3))
        out, y, loss = k, f"torch.randn({batch}, {k}, generator=g){fl}", "nn.MSELoss()"
    else:
        out, y, loss = 1, f"torch.randint(0, 2, ({batch}, 1), generator=g).to(torch.{dtype})", "nn.BCEWithLogitsLoss()"
    b.fwd.append(f"return {b.layer(f'nn.Linear({width}, {out})')}(h)")

    z = f"torch.randn({batch}, 2, generator=g){fl}"
    inputs = {"tensor": "x", "tuple": "(x, z)", "dict": "{'x': x, 'z': z}"}[wrap]
    signature = "x, z" if extra else "x"
    init = "\n".join("        " + line for line in b.init)
    fwd = "\n".join("        " + line for line in ["h = x", *b.fwd])
    data = (f"def sample_batch():\n    g = torch.Generator().manual_seed(0)\n    x, z, y = {x}, {z}, {y}\n"
            f"    return {inputs}, y\n") if source == "sample_batch" else (
        f"def _batch(i):\n    g = torch.Generator().manual_seed(i)\n    x, z, y = {x}, {z}, {y}\n"
        f"    return {inputs}, y\n\ntrain_loader = [_batch(i) for i in range(4)]\n")
    text = "\n".join([
        "import torch", "import torch.nn as nn", "import torch.nn.functional as F", "", "",
        "class Net(nn.Module):", "    def __init__(self):", "        super().__init__()", init, "",
        f"    def forward(self, {signature}):", fwd, "", "",
        "def build_model():", f"    return Net(){fl}", "", "", f"loss_fn = {loss}", "", "", data])
    return ModelFile(text, b.parts)


# ---- running -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one generated file gave: per-probe statuses, and any crash, error or hang."""

    statuses: dict[str, str]
    crash: str = ""  # an exception out of nndiag.check, or the file-level error
    errors: list[str] = field(default_factory=list)  # "probe: message"
    hangs: list[str] = field(default_factory=list)  # probes stopped at the time limit
    seconds: float = 0.0


def run_file(model: ModelFile, folder: Path, *, settings=None, time_limit: float = 120.0) -> Outcome:
    """Check one generated file with every probe."""
    import nndiag

    path = folder / "generated_model.py"
    path.write_text(model.source)
    start = time.perf_counter()
    try:
        report = nndiag.check(path, settings=settings or {}, threads=1, time_limit=time_limit)
    except Exception as exc:  # noqa: BLE001 - the very thing this counts
        return Outcome({}, crash=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start)
    (subject,) = report.subjects
    out = Outcome({r.probe: r.status.value for r in subject.results}, seconds=time.perf_counter() - start)
    if subject.load_error:
        out.crash = subject.load_error
    for r in subject.results:
        if r.status.value == "error":
            out.errors.append(f"{r.probe}: {r.summary}")
        if r.status.value == "skip" and "time limit" in r.summary:
            out.hangs.append(r.probe)
    return out


def main(argv: list[str] | None = None) -> int:
    """Draw ``--examples`` files, check each, print the tallies; exit 1 on any crash/error/hang."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (the same files each run)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="per-probe limit: past it, a hang")
    parser.add_argument("--show", type=int, default=3, help="print the source of this many failing files")
    args = parser.parse_args(argv)

    import random

    from hypothesis import HealthCheck, given, seed, settings

    outcomes: list[tuple[ModelFile, Outcome]] = []
    folder = Path(tempfile.mkdtemp(prefix="nndiag-fuzz-"))
    start = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(model_files())
    def one(model):
        outcomes.append((model, run_file(model, folder, time_limit=args.time_limit)))
        if len(outcomes) % 25 == 0:
            print(f"  {len(outcomes)} files, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    random.seed(args.seed)
    one()
    total = time.perf_counter() - start
    crashes = [(m, o) for m, o in outcomes if o.crash]
    errors = [(m, o) for m, o in outcomes if o.errors]
    hangs = [(m, o) for m, o in outcomes if o.hangs]
    verdicts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for _, o in outcomes:
        for probe, status in o.statuses.items():
            verdicts[probe][status] += 1
    print(f"generated model files: {len(outcomes)} in {total:.0f} s "
          f"({total / max(1, len(outcomes)):.2f} s per file, every probe, default settings)")
    print(f"crashes (exception or file-level error): {len(crashes)}")
    print(f"files with a probe error: {len(errors)}")
    print(f"files with a hang (probe at the time limit of {args.time_limit:g} s): {len(hangs)}")
    statuses = ["pass", "warn", "fail", "skip", "error"]
    print("\nverdicts per probe:")
    print(f"  {'probe':<20}" + "".join(f"{s:>7}" for s in statuses))
    for probe in sorted(verdicts):
        print(f"  {probe:<20}" + "".join(f"{verdicts[probe][s]:>7}" for s in statuses))
    for label, bad in (("crash", crashes), ("error", errors), ("hang", hangs)):
        for m, o in bad[: args.show]:
            print(f"\n--- {label}: {o.crash or '; '.join(o.errors) or o.hangs}\n{' '.join(m.parts)}\n{m.source}")
    return 1 if crashes or errors or hangs else 0


if __name__ == "__main__":
    sys.exit(main())
