"""Plain-PyTorch checks that show the defect of each bug file whose manifest symptom is ``wrong_output``.

The validator (``python -m reference_models.zoo.validate --kind bugs``) trains each bug file in plain
PyTorch and, for a ``wrong_output`` bug, calls the function here named after the file's stem:
``def <stem>(subject, trace) -> tuple[bool, str]``. ``subject`` is the file's
``nndiag.subject.Subject`` (model_factory, batches, loss_fn, optimizer_factory, training_step,
train_step); ``trace`` is the validator's ``TrainTrace`` (losses, accuracies, seed, steps). The
function returns ``(shown, message)``: ``shown`` is True when the defect is visible, and the message
says what was measured. Nothing here goes through nndiag's probes: these are the ground truth the
probes are calibrated against.

Checks that need a model build their own under ``torch.manual_seed(trace.seed)`` and never touch
anything the validator holds.
"""

from __future__ import annotations

import copy
import math

import torch

# ---------------------------------------------------------------------------------------------
# Helpers shared by the checks


def _split(batch):
    """(inputs, targets) of a batch in the contract's forms (pair or dict)."""
    if isinstance(batch, dict):
        return batch["inputs"], batch["targets"]
    return batch[0], batch[1]


def _call(model, inputs):
    """The model called on inputs as nndiag calls it (tensor, positional tuple, or keywords)."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _first_batch(subject):
    return next(iter(subject.batches()))


def _all_batches(subject, limit: int = 64):
    out = []
    for i, batch in enumerate(subject.batches()):
        if i >= limit:
            break
        out.append(batch)
    return out


def _fresh(subject, seed: int):
    torch.manual_seed(seed)
    return subject.model_factory()


def _optimizer(subject, model):
    params = [p for p in model.parameters() if p.requires_grad]
    if subject.optimizer_factory is not None:
        return subject.optimizer_factory(params)
    return torch.optim.Adam(params, lr=1e-3)


def _step(subject, model, optimizer, batch):
    """One update as the validator does it: the file's train_step, else zero_grad/loss/backward/step."""
    if subject.train_step is not None:
        return float(subject.train_step(model, optimizer, batch))
    optimizer.zero_grad()
    if subject.training_step is not None:
        loss = subject.training_step(model, batch)
    else:
        inputs, targets = _split(batch)
        loss = subject.loss_fn(_call(model, inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def _train(subject, seed: int, steps: int = 200):
    """A model trained for ``steps`` steps in plain PyTorch (the validator's loop, rebuilt here)."""
    model = _fresh(subject, seed)
    optimizer = _optimizer(subject, model)
    batches = _all_batches(subject)
    for i in range(steps):
        _step(subject, model, optimizer, batches[i % len(batches)])
    return model


def _batch_mixing(subject, seed: int) -> tuple[bool, str]:
    """Does sample 0's output change when only the other samples of the batch change (eval mode)?"""
    model = _fresh(subject, seed).eval()
    inputs, _ = _split(_first_batch(subject))
    x = inputs[:8].clone()
    with torch.no_grad():
        out = _call(model, x)
        other = x.clone()
        gen = torch.Generator().manual_seed(seed)
        other[1:] = other[1:] + torch.randn(other[1:].shape, generator=gen) * x.std().clamp_min(1e-3)
        out2 = _call(model, other)
    change = (out[0] - out2[0]).abs().max().item()
    scale = out.abs().max().item() or 1.0
    shown = change > 1e-4 * scale
    return shown, (f"sample 0's output moved by {change:.3g} (output scale {scale:.3g}) when only samples "
                   f"1-7 of the batch changed")


def _predicted_classes(model, batches):
    preds = []
    with torch.no_grad():
        for batch in batches:
            inputs, _ = _split(batch)
            preds.append(_call(model, inputs).argmax(1))
    return torch.cat(preds)


# ---------------------------------------------------------------------------------------------
# reference_models/broken/


def digits_custom_batch_norm(subject, trace):
    return _batch_mixing(subject, trace.seed)


def digits_softmax_over_batch(subject, trace):
    return _batch_mixing(subject, trace.seed)


def digits_no_zero_grad(subject, trace):
    """The second step's gradient holds the first step's: g2 - g(theta1) = a * g1 with a ~ 1."""
    model = _fresh(subject, trace.seed)
    optimizer = _optimizer(subject, model)
    batch = _first_batch(subject)
    subject.train_step(model, optimizer, batch)
    g1 = [p.grad.detach().clone() for p in model.parameters()]
    twin = copy.deepcopy(model)
    for p in twin.parameters():
        p.grad = None
    subject.train_step(model, optimizer, batch)
    g2 = [p.grad.detach().clone() for p in model.parameters()]
    twin_opt = _optimizer(subject, twin)
    subject.train_step(twin, twin_opt, batch)
    gb = [p.grad.detach().clone() for p in twin.parameters()]
    num = sum(((a - b) * c).sum() for a, b, c in zip(g2, gb, g1)).item()
    den = sum((c * c).sum() for c in g1).item() or 1.0
    frac = num / den
    return frac > 0.5, f"fraction of the previous step's gradient still in the next one: {frac:.3f} (cleared: 0)"


def mlp_targets_out_of_range(subject, trace):
    model = _fresh(subject, trace.seed)
    inputs, targets = _split(_first_batch(subject))
    with torch.no_grad():
        classes = _call(model, inputs).shape[1]
    top = max(int(_split(b)[1].max()) for b in _all_batches(subject, 8))
    return top >= classes, f"largest class id {top} for a {classes}-way output (valid ids 0..{classes - 1})"


def nll_without_log_softmax(subject, trace):
    low = min(trace.losses)
    return low < 0, f"lowest NLL loss {low:.3g}: a negative log-likelihood of probabilities cannot be below 0"


def relu_output_layer(subject, trace):
    model = _fresh(subject, trace.seed)
    inputs, _ = _split(_first_batch(subject))
    with torch.no_grad():
        logits = _call(model, inputs)
    zero = (logits == 0).float().mean().item()
    return zero > 0.2, f"{zero:.0%} of the logits are exactly 0 (clipped by the ReLU, no gradient through them)"


def sgd_lr_too_high_quadratic(subject, trace):
    first = trace.losses[0]
    worst = max(trace.losses, key=lambda v: v if math.isfinite(v) else math.inf)
    shown = not math.isfinite(worst) or worst > 1e3 * first
    return shown, f"loss {first:.3g} at step 0, worst {worst:.3g} during training"
