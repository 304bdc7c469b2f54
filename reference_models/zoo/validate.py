"""Plain-PyTorch validator of the calibration zoo: do healthy files learn, do bug files show their bug?

Each model file is loaded with :func:`nndiag.loading.load_model_file` (the same names nndiag reads)
and trained here in an ordinary loop, *not* through nndiag's probes, for ``steps`` steps cycling
over its batches under ``torch.manual_seed(seed)``. A step is the file's ``train_step(model,
optimizer, batch)`` when it has one, else ``zero_grad``, the loss (``training_step(model, batch)``
or ``loss_fn(model(inputs), targets)``), ``backward``, ``step``. The result is a :class:`TrainTrace`.

Rules (the zoo spec, /work/notes/zoo.md):

* healthy: on every seed, every loss is finite and the final loss (mean of the last 10) is below
  0.7 x the initial (mean of the first 3), or the batch accuracy (mean of the last 10) is >= 0.9;
* bugs: the manifest's ``symptom`` holds on every seed: ``nan`` (a non-finite loss appears),
  ``no_learning`` (final > 0.9 x initial and accuracy at most 1.5 x chance), ``diverges`` (final >
  initial or a non-finite loss), ``slow`` (final > 0.5 x initial), ``frozen`` (a trainable
  parameter, or every parameter, unchanged after training), ``wrong_output`` (trains, and the
  function named after the file's stem in ``reference_models/zoo/bugs/symptoms.py`` returns
  ``(True, why)``).

Run ``python -m reference_models.zoo.validate [--seeds 0 1 2] [--kind healthy|bugs|all] [FILES...]``:
it prints a table, merges the results into ``reference_models/zoo/validation.json`` and exits 1 when
a file breaks its rule (or cannot be run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[2]
ZOO = Path(__file__).resolve().parent
HEALTHY_MANIFEST = ZOO / "healthy" / "manifest.json"
BUGS_MANIFEST = ZOO / "bugs" / "manifest.json"
SYMPTOMS = ZOO / "bugs" / "symptoms.py"
OUTPUT = ZOO / "validation.json"

DEFAULT_STEPS = 200
DEFAULT_SEEDS = (0, 1, 2)
INITIAL_WINDOW = 3  # initial loss = mean of the first 3 losses
FINAL_WINDOW = 10  # final loss / accuracy = mean of the last 10
HEALTHY_DROP = 0.7  # healthy: final < 0.7 x initial ...
HEALTHY_ACCURACY = 0.9  # ... or final batch accuracy >= 0.9
RULES = ("healthy: every seed all losses finite and final (mean of last 10) < 0.7 x initial (mean of "
         "first 3) or final batch accuracy >= 0.9; bugs: the manifest's symptom holds on every seed")
SYMPTOMS_KNOWN = ("nan", "no_learning", "diverges", "slow", "frozen", "wrong_output")


@dataclass
class TrainTrace:
    """What one plain training run recorded.

    ``accuracies[i]`` is step i's batch accuracy (argmax over the class dim vs long targets, on the
    output of that step's forward, before its update) or None when the step's output/targets do not
    look like classification or the file computes its own loss. ``unchanged`` names the parameters
    whose values were bit-identical after training; ``trainable`` those that required grad at the
    start. Training stops at the first non-finite loss (later steps would only repeat it).
    """

    losses: list[float]
    accuracies: list[float | None]
    seed: int
    steps: int
    num_classes: int | None = None
    unchanged: list[str] = field(default_factory=list)
    trainable: list[str] = field(default_factory=list)
    parameters: int = 0
    parameter_tensors: int = 0
    seconds: float = 0.0

    @property
    def finite(self) -> bool:
        """True when every recorded loss is finite."""
        return all(math.isfinite(v) for v in self.losses)

    @property
    def initial(self) -> float:
        """Mean of the first 3 losses."""
        return _mean(self.losses[:INITIAL_WINDOW])

    @property
    def final(self) -> float:
        """Mean of the last 10 losses (NaN/Inf if any of them is)."""
        return _mean(self.losses[-FINAL_WINDOW:])

    @property
    def final_accuracy(self) -> float | None:
        """Mean batch accuracy of the last 10 steps, or None when there is no accuracy."""
        tail = [a for a in self.accuracies[-FINAL_WINDOW:] if a is not None]
        return _mean(tail) if tail else None

    @property
    def frozen_trainable(self) -> list[str]:
        """Parameters that required grad and never changed."""
        return [n for n in self.unchanged if n in set(self.trainable)]

    def summary(self) -> dict[str, Any]:
        """The JSON-ready numbers (losses kept in full, rounded)."""
        d = asdict(self)
        d["losses"] = [_round(v) for v in self.losses]
        d["accuracies"] = [None if a is None else round(a, 4) for a in self.accuracies]
        d.update(initial=_round(self.initial), final=_round(self.final), finite=self.finite,
                 final_accuracy=None if self.final_accuracy is None else round(self.final_accuracy, 4))
        d["seconds"] = round(self.seconds, 2)
        return d


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _round(v: float) -> float | str:
    return round(v, 6) if math.isfinite(v) else str(v)


# ---- training ------------------------------------------------------------------------------------
def _cycle(make: Callable[[], Any]) -> Iterator[Any]:
    """The file's batches, restarting its iterable whenever it runs out."""
    while True:
        empty = True
        for batch in make():
            empty = False
            yield batch
        if empty:
            raise ValueError("the file's data gave no batches")


def batch_accuracy(output: Any, targets: Any) -> tuple[float | None, int | None]:
    """(accuracy, number of classes) when ``output`` holds class scores for long ``targets``.

    The class dim is dim 1 when ``output`` without it has the targets' shape (``(N, C)`` vs
    ``(N,)``, ``(N, C, T)`` vs ``(N, T)``, as CrossEntropyLoss takes them), else the last dim when
    that matches (``(N, T, C)`` vs ``(N, T)``). Targets below 0 (ignore_index) are not counted.
    """
    import torch

    if not (isinstance(output, torch.Tensor) and isinstance(targets, torch.Tensor)):
        return None, None
    if targets.dtype not in (torch.int64, torch.int32) or output.dim() != targets.dim() + 1:
        return None, None
    if output.dim() >= 2 and output.shape[:1] + output.shape[2:] == targets.shape:
        dim = 1
    elif output.shape[:-1] == targets.shape:
        dim = -1
    else:
        return None, None
    if output.shape[dim] < 2:
        return None, None
    keep = targets >= 0
    if not bool(keep.any()):
        return None, None
    pred = output.detach().argmax(dim)
    return float((pred[keep] == targets[keep]).float().mean()), int(output.shape[dim])


def train(subject, seed: int, steps: int = DEFAULT_STEPS) -> TrainTrace:
    """Train the subject's model in plain PyTorch for ``steps`` steps under ``torch.manual_seed(seed)``.

    Exceptions from the user's code propagate (the caller reports them).
    """
    import numpy as np
    import torch

    from nndiag.batches import call_model, split_batch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = subject.model_factory()
    model.train()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:  # every parameter frozen: torch optimizers refuse an empty list, and nothing can change
        return TrainTrace(losses=[], accuracies=[], seed=seed, steps=steps, unchanged=list(before),
                          trainable=[], parameters=sum(p.numel() for p in model.parameters()),
                          parameter_tensors=len(before))
    optimizer = (subject.optimizer_factory or (lambda ps: torch.optim.Adam(ps, lr=1e-3)))(params)
    data = _cycle(subject.batches)
    losses: list[float] = []
    accuracies: list[float | None] = []
    classes: int | None = None
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(data)
        acc = None
        if subject.train_step is not None:
            out = subject.train_step(model, optimizer, batch)
            loss = float(out.detach()) if isinstance(out, torch.Tensor) else float(out)
        else:
            optimizer.zero_grad(set_to_none=True)
            if subject.training_step is not None:
                loss_t = subject.training_step(model, batch)
            else:
                inputs, targets = split_batch(batch)
                output = call_model(model, inputs)
                loss_t = subject.loss_fn(output, targets)
                acc, c = batch_accuracy(output, targets)
                classes = c or classes
            loss_t.backward()
            optimizer.step()
            loss = float(loss_t.detach())
        losses.append(loss)
        accuracies.append(acc)
        if not math.isfinite(loss):
            break
    seconds = time.perf_counter() - start
    unchanged = [n for n, p in model.named_parameters() if n in before and torch.equal(before[n], p.detach())]
    return TrainTrace(losses=losses, accuracies=accuracies, seed=seed, steps=steps,
                      num_classes=classes, unchanged=unchanged, trainable=trainable,
                      parameters=sum(p.numel() for p in model.parameters()),
                      parameter_tensors=len(before), seconds=seconds)


# ---- rules ---------------------------------------------------------------------------------------
def healthy_ok(trace: TrainTrace) -> tuple[bool, str]:
    """The healthy rule on one seed: all losses finite and (final < 0.7 x initial or accuracy >= 0.9)."""
    if not trace.finite:
        return False, f"non-finite loss at step {len(trace.losses) - 1}"
    acc = trace.final_accuracy
    if trace.final < HEALTHY_DROP * trace.initial:
        return True, f"loss {trace.initial:.4g} -> {trace.final:.4g}"
    if acc is not None and acc >= HEALTHY_ACCURACY:
        return True, f"accuracy {acc:.3f}"
    return False, (f"loss {trace.initial:.4g} -> {trace.final:.4g} (needed < {HEALTHY_DROP} x initial)"
                   + (f", accuracy {acc:.3f} (needed >= {HEALTHY_ACCURACY})" if acc is not None else ""))


def symptom_ok(symptom: str, trace: TrainTrace, subject=None, stem: str = "") -> tuple[bool, str]:
    """Whether ``trace`` (one seed) shows the bug manifest's ``symptom``; with a reason."""
    ini, fin, acc = trace.initial, trace.final, trace.final_accuracy
    desc = f"loss {ini:.4g} -> {fin:.4g}" + (f", accuracy {acc:.3f}" if acc is not None else "")
    if symptom == "nan":
        return (not trace.finite), (f"non-finite loss at step {len(trace.losses) - 1}"
                                     if not trace.finite else f"all losses finite ({desc})")
    if symptom == "diverges":
        return (not trace.finite or fin > ini), desc if trace.finite else "non-finite loss"
    if symptom == "no_learning":
        if not trace.finite:
            return False, "non-finite loss (that is the nan symptom)"
        chance = 1.0 / trace.num_classes if trace.num_classes else None
        acc_low = acc is None or chance is None or acc <= 1.5 * chance
        return (fin > 0.9 * ini and acc_low), desc + (f" (chance {chance:.3f})" if chance else "")
    if symptom == "slow":
        return (trace.finite and fin > 0.5 * ini), desc
    if symptom == "frozen":
        frozen = trace.frozen_trainable
        all_same = len(trace.unchanged) == trace.parameter_tensors
        if frozen:
            return True, f"{len(frozen)} trainable parameter(s) unchanged, e.g. {frozen[0]}"
        if all_same and trace.unchanged:
            return True, "no parameter changed"
        return False, "every trainable parameter changed"
    if symptom == "wrong_output":
        if not trace.finite:
            return False, "non-finite loss"
        fn = _symptom_function(stem)
        if fn is None:
            return False, f"no function {stem}() in {SYMPTOMS.relative_to(REPO)}"
        shown, why = fn(subject, trace)
        return bool(shown), why
    raise ValueError(f"unknown symptom {symptom!r}; known: {', '.join(SYMPTOMS_KNOWN)}")


def _symptom_function(stem: str):
    if not SYMPTOMS.is_file():
        return None
    spec = importlib.util.spec_from_file_location("reference_models_zoo_bug_symptoms", SYMPTOMS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, stem, None)


# ---- files and manifests -------------------------------------------------------------------------
def _load_manifest(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.is_file() else {}


def rel(path: str | Path) -> str:
    """A file's path relative to the repository root (the manifests' keys)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(REPO).as_posix()
    except ValueError:
        return str(p)


def select(kind: str, files: list[str]) -> list[tuple[str, str, dict]]:
    """(relative path, kind, manifest entry) for the named files, or for every file of ``kind``."""
    healthy, bugs = _load_manifest(HEALTHY_MANIFEST), _load_manifest(BUGS_MANIFEST)
    if files:
        out = []
        for f in files:
            r = rel(f)
            if r in bugs and kind != "healthy":
                out.append((r, "bugs", bugs[r]))
            elif r in healthy or kind == "healthy" or "/healthy/" in r:
                out.append((r, "healthy", healthy.get(r, {})))
            else:
                out.append((r, "bugs", bugs.get(r, {})))
        return out
    out = []
    if kind in ("healthy", "all"):
        listed = set(healthy)
        on_disk = {rel(p) for p in (ZOO / "healthy").glob("*.py") if not p.name.startswith("_")}
        out += [(r, "healthy", healthy.get(r, {})) for r in sorted(listed | on_disk)]
    if kind in ("bugs", "all"):
        out += [(r, "bugs", e) for r, e in sorted(bugs.items())]
    return out


def validate_file(path: str, kind: str, entry: dict, seeds, steps: int) -> dict[str, Any]:
    """Train one file on every seed and judge it by its rule; a JSON-ready result."""
    from nndiag.loading import load_model_file

    result: dict[str, Any] = {"kind": kind, "steps": steps, "seeds": {}}
    symptom = entry.get("symptom") if kind == "bugs" else None
    result["rule"] = "healthy" if kind == "healthy" else f"symptom={symptom}"
    try:
        if kind == "bugs" and symptom not in SYMPTOMS_KNOWN:
            raise ValueError(f"manifest symptom {symptom!r} is not one of {', '.join(SYMPTOMS_KNOWN)}")
        subject = load_model_file(REPO / path)
        ok_all = True
        for seed in seeds:
            trace = train(subject, seed, steps)
            if kind == "healthy":
                ok, why = healthy_ok(trace)
            else:
                ok, why = symptom_ok(symptom, trace, subject, Path(path).stem)
            ok_all &= ok
            s = trace.summary()
            s.update(ok=ok, why=why)
            result["seeds"][str(seed)] = s
        result["verdict"] = "ok" if ok_all else "broken"
    except Exception as exc:  # noqa: BLE001 - a file that cannot run is reported, not fatal
        result["verdict"] = "error"
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


def _fmt(values) -> str:
    return "/".join("-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v)) for v in values)


def print_table(results: dict[str, dict], out=sys.stdout) -> None:
    """file, seeds, initial, final, accuracy, verdict: one row per file, per-seed values joined by /."""
    rows = [("file", "seeds", "initial", "final", "accuracy", "verdict")]
    for path, r in results.items():
        seeds = r["seeds"]
        if r["verdict"] == "error":
            rows.append((path, "", "", "", "", "error: " + r["error"][:80]))
            continue
        rows.append((
            path, _fmt(list(seeds)),
            _fmt([s["initial"] if isinstance(s["initial"], float) else None for s in seeds.values()]),
            _fmt([s["final"] if isinstance(s["final"], float) else None for s in seeds.values()]),
            _fmt([s["final_accuracy"] for s in seeds.values()]),
            r["verdict"] + ("" if r["verdict"] == "ok" else ": " + "; ".join(
                f"seed {k}: {s['why']}" for k, s in seeds.items() if not s["ok"])),
        ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[5], file=out)


def write_results(results: dict[str, dict], path: Path = OUTPUT) -> None:
    """Merge ``results`` into the JSON file (other files' entries are kept), keys sorted."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    files = old.get("files", {})
    for k, v in results.items():
        v = dict(v)
        for s in v.get("seeds", {}).values():  # keep the file small: the curve is not needed
            s.pop("losses", None)
            s.pop("accuracies", None)
            s.pop("unchanged", None)
            s.pop("trainable", None)
        files[k] = v
    doc = {"written_by": "python -m reference_models.zoo.validate", "rules": RULES,
           "files": dict(sorted(files.items()))}
    path.write_text(json.dumps(doc, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """The command line: validate, print the table, write validation.json, exit 1 on a broken file."""
    ap = argparse.ArgumentParser(prog="python -m reference_models.zoo.validate",
                                 description="Train zoo files in plain PyTorch and check their rule.")
    ap.add_argument("files", nargs="*", help="model files (default: every file of --kind)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    ap.add_argument("--kind", choices=("healthy", "bugs", "all"), default="all")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--output", type=Path, default=OUTPUT, help="JSON file to merge results into")
    ap.add_argument("--no-write", action="store_true", help="do not write the JSON file")
    args = ap.parse_args(argv)
    chosen = select(args.kind, args.files)
    if not chosen:
        print("no files to validate", file=sys.stderr)
        return 1
    results = {}
    for path, kind, entry in chosen:
        t0 = time.perf_counter()
        results[path] = validate_file(path, kind, entry, args.seeds, args.steps)
        results[path]["seconds"] = round(time.perf_counter() - t0, 2)
        r = results[path]
        print(f"  {path}: {r['verdict']} ({r['seconds']} s)" + (f" {r.get('error', '')}" if r["verdict"] == "error" else ""),
              file=sys.stderr, flush=True)
    print_table(results)
    if not args.no_write:
        write_results(results, args.output)
    bad = [p for p, r in results.items() if r["verdict"] != "ok"]
    print(f"{len(results) - len(bad)} of {len(results)} files keep their rule" +
          (f"; broken: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
