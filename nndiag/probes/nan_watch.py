"""The nan probe's long watch: the shared training pass continued for a few hundred steps, on
models cheap enough that this costs about a second.

Some NaNs need dozens to hundreds of updates to appear: a hand-written ``log(1 - sigmoid(z))``
turns ``-inf`` only once training has made ``z`` large enough that the sigmoid rounds to exactly
1.0 (27-383 steps on the zoo's blobs classifier, depending on the draw). The shared pass's 20
steps do not reach that; 300 steps do, on the draws that matter (docs/probes/nan.md).

How many steps a model gets depends only on its counted floating-point work per training step
(``torch.utils.flop_counter.FlopCounterMode`` plus the recurrent layers, which run as one fused
op it does not count), never on a clock: the same model gets the same watch on any machine, under
any load (no verdict depends on the machine's load).
"""

from __future__ import annotations

from typing import Any

import torch

from nndiag.passes import TRAINING_SAMPLES
from nndiag.seeding import fork_seeded
from nndiag.training_trace import TrainingTrace, run_training_trace


def step_flops(bench: Any) -> float | None:
    """Floating-point operations of one training step of a fresh model on the first probe batch
    (forward, backward; the optimizer's elementwise work is not counted), or None when the step
    cannot be counted (it raised under the counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    extra = [0.0]

    def recurrent(module, args, _output):
        # FlopCounterMode does not see inside the fused CPU LSTM: ~2 FLOPs per weight per token
        # forward, twice that backward.
        x = args[0] if args else None
        data = getattr(x, "data", x)  # a PackedSequence's flat (tokens, features) data
        if isinstance(data, torch.Tensor) and data.dim() >= 2 and module.input_size:
            tokens = data.numel() / module.input_size
            weights = sum(p.numel() for p in module.parameters())
            extra[0] += 6.0 * weights * tokens

    try:
        with fork_seeded(bench.seed):
            model = bench.fresh_model()
            optimizer = bench.make_optimizer(model)
            batch = bench.first_batch()
            handles = [m.register_forward_hook(recurrent) for m in model.modules()
                       if isinstance(m, torch.nn.RNNBase)]
            try:
                with FlopCounterMode(display=False) as counter:
                    bench.step(model, optimizer, batch)
            finally:
                for h in handles:
                    h.remove()
        return float(counter.get_total_flops()) + extra[0]
    except Exception:  # noqa: BLE001 - the cost is unknown: no long watch, the shared pass stands
        return None


def watch_steps(flops: float | None, max_steps: int, budget: float) -> int:
    """The steps the long watch may run: ``max_steps``, or fewer so that the counted work stays
    within ``budget`` FLOPs; 0 when the cost is unknown."""
    if flops is None or max_steps <= 0:
        return 0
    if flops <= 0:
        return int(max_steps)
    return int(min(max_steps, budget // flops))


def long_watch(bench: Any, steps: int) -> TrainingTrace:
    """The shared pass's training, run for ``steps`` steps (no gradient statistics) under the run
    seed, so that the nan locator's replay (also under the run seed) reproduces it."""
    with fork_seeded(bench.seed):
        return run_training_trace(bench, steps, 0, TRAINING_SAMPLES)


def loss_spike(losses: list[float], period: int, scale: float | None = None) -> tuple[float, int] | None:
    """The largest rise of the loss above the best value it had reached on the same batch before
    (the run cycles over ``period`` batches: step t uses batch t mod period), as a multiple of
    ``scale`` (default: the initial loss), and the step (from 0) where it happened. None for a run
    too short to tell or a loss that does not start positive (an ELBO, a negative log-likelihood
    can)."""
    finite = [x for x in losses if x == x and abs(x) != float("inf")]
    if len(finite) < len(losses) or len(losses) <= period or losses[0] <= 0:
        return None
    period = max(1, period)
    best: dict[int, float] = {}
    rise, at = 0.0, 0
    for t, x in enumerate(losses):
        k = t % period
        if k in best and x - best[k] > rise:
            rise, at = x - best[k], t
        best[k] = min(best.get(k, x), x)
    return rise / max(losses[0], scale or 0.0), at


def loss_scale(bench: Any) -> float | None:
    """The loss of the best constant prediction on the first probe batch (a torch loss under
    nndiag's own step), the scale a rise is judged in: a model that starts trained (loaded
    weights) has an initial loss near 0, next to which any update looks like a spike."""
    from nndiag.batches import split_batch
    from nndiag.probes.overfit.criteria import constant_baseline

    s = bench.subject
    if s.train_step is not None or s.training_step is not None or s.loss_fn is None:
        return None  # the user's own step or loss wrapper: no constant baseline is known
    try:
        targets = split_batch(bench.first_batch(), s.data_source)[1]
    except Exception:  # noqa: BLE001 - not an (inputs, targets) batch: no scale
        return None
    base = constant_baseline(s.loss_fn, targets)
    return base[0] if base is not None else None
