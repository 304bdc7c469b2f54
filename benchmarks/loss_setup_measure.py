"""Measurements behind loss-setup's bands that the zoo run alone does not print.

``relu-pool FILES...``: for a model whose logits are a pool of a ReLU, train a fresh copy with the
file's own optimizer on the probe batches (256 samples, cycling, the run seed) and print, every 30
steps, the loss on those batches over the loss before and the classes whose logit is exactly 0
for every sample. It asks whether training dynamics separate torchvision's SqueezeNet (healthy)
from the ReLU-pool bugs (docs/probes/loss-setup.md: they do not).

``value-order``: the nearest-neighbour value order of integer targets (loss_setup/class_ids.py)
on scikit-learn's bundled data sets, class ids and ordered quantities alike.

Usage::

    python benchmarks/loss_setup_measure.py relu-pool reference_models/zoo/healthy/tv_squeezenet_digits32.py \
        reference_models/zoo/bugs/digits_cnn_gap.py reference_models/zoo/bugs/digits_allconv.py
    python benchmarks/loss_setup_measure.py value-order
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def relu_pool(files: list[str], seeds: list[int], steps: int) -> None:
    """Print the loss ratio and dead classes every 30 steps, per file and seed."""
    import torch
    import torch.nn.functional as F

    from nndiag.batches import split_batch
    from nndiag.loading import load_model_file
    from nndiag.seeding import fork_seeded
    from nndiag.workbench import Workbench

    torch.set_num_threads(1)

    def measure(bench, model, batches):
        zs, ys = [], []
        was = model.training
        model.train()
        drop = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
        for m in drop:
            m.training = False  # as loss-setup measures: train mode, dropout off
        with torch.no_grad():
            for b in batches:
                zs.append(bench.forward(model, b))
                ys.append(split_batch(b, bench.subject.data_source)[1])
        for m in drop:
            m.training = True
        model.train(was)
        z, y = torch.cat(zs), torch.cat(ys)
        return float(F.cross_entropy(z, y)), int((z == 0).all(0).sum())

    for path in files:
        for seed in seeds:
            bench = Workbench(load_model_file(path), seed=seed)
            with fork_seeded(seed):
                model = bench.fresh_model()
                opt = bench.make_optimizer(model)
                batches = bench.probe_batches(256)
                before, dead0 = measure(bench, model, batches)
                row = [f"0: 1.000/{dead0}"]
                model.train()
                for k in range(steps):
                    bench.train_one_step(model, opt, batches[k % len(batches)])
                    if (k + 1) % 30 == 0:
                        loss, dead = measure(bench, model, batches)
                        row.append(f"{k + 1}: {loss / before:.3f}/{dead}")
            print(f"{Path(path).name} seed {seed} (loss ratio/dead classes): " + "  ".join(row),
                  flush=True)


def value_order() -> None:
    """Print same share and order for class ids and ordered integer targets (256 samples)."""
    import numpy as np
    import torch
    from sklearn import datasets

    from nndiag.probes.loss_setup.class_ids import value_order as order_of

    rng = np.random.default_rng(0)
    digits, wine, iris = datasets.load_digits(), datasets.load_wine(), datasets.load_iris()
    diabetes = datasets.load_diabetes()
    deciles = np.digitize(diabetes.target, np.quantile(diabetes.target, np.linspace(0.1, 0.9, 9)))
    cases = [
        ("class ids: digits 0-9", digits.data, digits.target),
        ("class ids: digits, ids permuted", digits.data, rng.permutation(10)[digits.target]),
        ("class ids: wine cultivar 0-2", wine.data, wine.target),
        ("class ids: iris species 0-2", iris.data, iris.target),
        ("quantity: diabetes progression in deciles", diabetes.data, deciles),
        ("quantity: iris petal width in half cm", iris.data[:, :3], np.round(iris.data[:, 3] * 2)),
        ("quantity: wine alcohol rounded", np.delete(wine.data, 0, 1), np.round(wine.data[:, 0])),
        ("quantity: wine proline // 200", np.delete(wine.data, 12, 1), wine.data[:, 12] // 200),
    ]
    for name, x, y in cases:
        idx = rng.permutation(len(y))[:256]
        m = order_of(torch.tensor(x[idx]), torch.tensor(y[idx]))
        print(f"{name:45s} values {m.values:3d}  same {m.same:.2f}  order {m.order:.3f}  "
              f"pairs {m.pairs}")


def main() -> None:
    """Parse the command line and run one measurement."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    rp = sub.add_parser("relu-pool")
    rp.add_argument("files", nargs="+")
    rp.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    rp.add_argument("--steps", type=int, default=240)
    sub.add_parser("value-order")
    args = ap.parse_args()
    if args.what == "relu-pool":
        relu_pool(args.files, args.seeds, args.steps)
    else:
        value_order()


if __name__ == "__main__":
    main()
