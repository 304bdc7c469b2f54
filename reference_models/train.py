"""Train one reference model and record its held-out score.

    python -m reference_models.train NAME [--dataset mnist|fashion-mnist] [--epochs N]
        [--data-dir DIR] [--out DIR] [--seed N] [--limit N] [--batch-size N] [--download] [--watch]

NAME is one of xor, mlp, cnn, lstm, seq_classifier. The model, loss, optimizer and data all come from
the model file itself (``reference_models/NAME.py``), so there is one definition of each. Writes
``<out>/<NAME>.pt`` (a ``state_dict``, loadable with ``torch.load(path, weights_only=True)``) and
``<out>/metrics.json`` (``test_accuracy`` or ``test_mse``, ``epochs``, ``train_seconds``, ``dataset``,
``split``, ``model``, ``seed``, ...). Exits 2 with a message when the data is missing. With
``--watch`` the run is watched by ``nndiag.watch`` (docs/watch.md): verdicts print as they happen,
and ``<out>/watch.json`` and ``<out>/watch.html`` hold the report.

Nothing is downloaded unless ``--download`` is given (needs a network).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from reference_models.data import DataNotFoundError, load_image_split

MODELS = ("xor", "mlp", "cnn", "lstm", "seq_classifier")


class UsageError(ValueError):
    """A command-line choice that does not fit the model (e.g. a data set it has no loader for)."""


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m reference_models.train", description="Train a reference model and record its held-out score."
    )
    parser.add_argument("name", choices=MODELS, help="which model file to train")
    parser.add_argument("--dataset", help="data set for the image models: mnist (default) or fashion-mnist")
    parser.add_argument("--epochs", type=int, help="passes over the training data (default: the model file's EPOCHS)")
    parser.add_argument("--data-dir", help="data root (default: $NNDIAG_DATA_DIR, else ~/.cache/nndiag/data)")
    parser.add_argument("--out", default="runs", help="output folder (default: runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the weights and the shuffling (default 0)")
    parser.add_argument("--limit", type=int, help="use only the first N training and N evaluation samples (smoke test)")
    parser.add_argument("--batch-size", type=int, help="default: the model file's BATCH_SIZE")
    parser.add_argument("--download", action="store_true", help="download missing data with torchvision (network)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--watch", action="store_true",
                        help="watch the run with nndiag.watch; writes <out>/watch.json and watch.html")
    return parser.parse_args(argv)


def load_model_file(name: str):
    """The model file ``reference_models/<name>.py`` as a module."""
    return importlib.import_module(f"reference_models.{name}")


def make_loaders(module, args):
    """(train loader, evaluation loader) from the model file's ``dataloader``."""
    kwargs = dict(dataset=args.dataset, data_dir=args.data_dir, limit=args.limit)
    batch_size = args.batch_size or module.BATCH_SIZE
    if args.download and hasattr(module, "default_dataset"):  # image models: fetch the files first
        load_image_split(args.dataset or module.default_dataset(), args.data_dir, download=True)
    train = module.dataloader(batch_size, train=True, seed=args.seed, **kwargs)
    test = module.dataloader(512, train=False, seed=args.seed, **kwargs)
    return train, test


def train_epoch(model, loader, loss_fn, optimizer, progress, watch=None) -> float:
    """One pass over ``loader``; returns the mean training loss (``watch``: an nndiag watch)."""
    model.train()
    total, count = 0.0, 0
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        if watch is not None:
            watch.step(loss)
        total += loss.item() * len(targets)
        count += len(targets)
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.4f}")
    return total / max(count, 1)


@torch.no_grad()
def evaluate(model, loader, loss_fn, task: str) -> dict:
    """Mean loss and the task's score (``accuracy`` or ``mse``) over ``loader``."""
    model.eval()
    loss_sum, correct, sq_err, count = 0.0, 0, 0.0, 0
    for inputs, targets in loader:
        output = model(inputs)
        loss_sum += loss_fn(output, targets).item() * len(targets)
        count += len(targets)
        if task == "classification":
            correct += (output.argmax(dim=1) == targets).sum().item()
        elif task == "binary":
            correct += ((output > 0.5).float() == targets).all(dim=1).sum().item()
        else:
            sq_err += torch.nn.functional.mse_loss(output, targets, reduction="sum").item() / output[0].numel()
    result = {"loss": loss_sum / count}
    if task == "regression":
        result["mse"] = sq_err / count
    else:
        result["accuracy"] = correct / count
    return result


def run(args) -> dict:
    """Train as ``args`` says, save the weights and metrics, and return the metrics."""
    module = load_model_file(args.name)
    datasets = getattr(module, "DATASETS", ())
    if args.dataset is not None and args.dataset not in datasets:
        raise UsageError(f"{args.name} has no data set {args.dataset!r}; choose one of: {', '.join(datasets)}")
    torch.manual_seed(args.seed)
    model = module.build_model()
    optimizer = module.build_optimizer(model.parameters())
    loss_fn = module.loss_fn
    train_loader, test_loader = make_loaders(module, args)
    epochs = args.epochs if args.epochs is not None else module.EPOCHS
    task = module.TASK

    initial = evaluate(model, test_loader, loss_fn, task)
    history = []
    progress = _progress_bar(epochs * len(train_loader), args.name, args.quiet)
    train_seconds = 0.0  # training passes only; the per-epoch evaluations are not counted
    watch = _start_watch(args, model, optimizer, progress)
    for epoch in range(1, epochs + 1):
        progress.set_description(f"{args.name} epoch {epoch}/{epochs}")
        start = time.perf_counter()
        train_loss = train_epoch(model, train_loader, loss_fn, optimizer, progress, watch)
        train_seconds += time.perf_counter() - start
        history.append({"epoch": epoch, "train_loss": train_loss, **_prefixed(evaluate(model, test_loader, loss_fn, task))})
        progress.write(_epoch_line(history[-1]))
    progress.close()
    if watch is not None:
        _finish_watch(watch, Path(args.out))

    final = evaluate(model, test_loader, loss_fn, task)
    metrics = _metrics(args, module, train_loader, test_loader, epochs, train_seconds, initial, final, history)
    save(model, metrics, Path(args.out), args.name)
    return metrics


def _start_watch(args, model, optimizer, progress):
    """An nndiag watch on the run (``--watch``), printing verdicts through the progress bar."""
    if not getattr(args, "watch", False):
        return None
    import nndiag.watch

    def say(event):
        progress.write(f"nndiag watch: [{event.check}] {event.severity} at step {event.step}: {event.message}")

    return nndiag.watch.watch(model, optimizer, name=f"reference_models/{args.name}.py (watched)",
                              on_event=say, raise_on_stop=False).start()


def _finish_watch(watch, out: Path) -> None:
    """Close the watch, print its summary, write ``watch.json`` and ``watch.html`` to ``out``."""
    from nndiag.writers import html, json_writer, text

    watch.close()
    report = watch.report
    out.mkdir(parents=True, exist_ok=True)
    (out / "watch.json").write_text(json_writer.render(report), encoding="utf-8")
    (out / "watch.html").write_text(html.render(report), encoding="utf-8")
    print(text.render(report), end="")


def save(model, metrics: dict, out: Path, name: str) -> None:
    """Write ``<out>/<name>.pt`` (state_dict) and ``<out>/metrics.json``."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / f"{name}.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def main(argv=None) -> int:
    """Entry point; 0 on success, 2 when the data is missing."""
    args = parse_args(argv)
    try:
        metrics = run(args)
    except (DataNotFoundError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    score = metrics.get("test_accuracy", metrics.get("test_mse"))
    key = "test_accuracy" if "test_accuracy" in metrics else "test_mse"
    print(f"{args.name} on {metrics['split']}: {key} = {score:.6g} after {metrics['epochs']} epochs "
          f"({metrics['train_seconds']:.1f} s); wrote {Path(args.out) / (args.name + '.pt')} and metrics.json")
    return 0


def _epoch_line(entry: dict) -> str:
    """One line per epoch: the training loss and the held-out scores."""
    return "epoch {}: ".format(entry["epoch"]) + ", ".join(
        f"{key} {value:.4g}" for key, value in entry.items() if key != "epoch"
    )


def _prefixed(result: dict) -> dict:
    return {f"test_{key}": value for key, value in result.items()}


def _metrics(args, module, train_loader, test_loader, epochs, train_seconds, initial, final, history) -> dict:
    """The metrics.json content."""
    data = train_loader.dataset
    metrics = {
        "model": args.name,
        "dataset": getattr(data, "name", None),
        "split": getattr(data, "split", None),
        "train_samples": len(data),
        "test_samples": len(test_loader.dataset),
        "epochs": epochs,
        "batch_size": args.batch_size or module.BATCH_SIZE,
        "seed": args.seed,
        "limit": args.limit,
        "train_seconds": round(train_seconds, 2),
        "initial_test_loss": initial["loss"],
        "test_loss": final["loss"],
        **{f"test_{k}": v for k, v in final.items() if k != "loss"},
        "history": history,
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def _progress_bar(total: int, name: str, quiet: bool):
    """A tqdm bar (or a silent stand-in when tqdm is missing or ``quiet``)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None or quiet:
        return _NoBar()
    return tqdm(total=total, desc=name, unit="batch", dynamic_ncols=True, mininterval=1.0,
                disable=None)  # None: shown on a terminal, silent when piped (CI logs)


class _NoBar:
    def write(self, line):
        pass

    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def set_description(self, desc):
        pass

    def close(self):
        pass


if __name__ == "__main__":
    sys.exit(main())
