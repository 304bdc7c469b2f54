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


def _perturbed(x, seed: int):
    """A copy of x with sample 0 changed: noise of one input std for floats, other ids for integers."""
    gen = torch.Generator().manual_seed(seed)
    out = x.clone()
    if x.is_floating_point():
        out[0] = out[0] + torch.randn(out[0].shape, generator=gen) * x.float().std().clamp_min(1e-3)
    else:
        top = int(x.max()) + 1
        out[0] = (out[0] + torch.randint(1, max(top, 2), out[0].shape, generator=gen)) % max(top, 2)
    return out


def _batch_mixing(subject, seed: int) -> tuple[bool, str]:
    """Do the other samples' outputs change when only sample 0's input changes (eval mode)?"""
    model = _fresh(subject, seed).eval()
    inputs, _ = _split(_first_batch(subject))
    x = inputs[:8].clone()
    with torch.no_grad():
        out = _call(model, x)
        out2 = _call(model, _perturbed(x, seed))
    change = (out[1:] - out2[1:]).abs().max().item()
    scale = out.abs().max().item() or 1.0
    shown = change > 1e-4 * scale
    return shown, (f"samples 1-7's outputs moved by up to {change:.3g} (output scale {scale:.3g}) when only "
                   f"sample 0's input changed")


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
    rows = (logits == 0).any(dim=1).float().mean().item()
    return rows > 0.5, (f"{rows:.0%} of the samples have at least one logit clipped to exactly 0 by the ReLU "
                        f"(no gradient can move it)")


def sgd_lr_too_high_quadratic(subject, trace):
    first = trace.losses[0]
    worst = max(trace.losses, key=lambda v: v if math.isfinite(v) else math.inf)
    shown = not math.isfinite(worst) or worst > 1e3 * first
    return shown, f"loss {first:.3g} at step 0, worst {worst:.3g} during training"


# ---------------------------------------------------------------------------------------------
# reference_models/zoo/bugs/


def _identical_rows(weight) -> float:
    """Largest difference between any row (unit, filter) of a weight and the first row."""
    flat = weight.detach().flatten(1)
    return (flat - flat[:1]).abs().max().item()


def digits_mlp_init_weights(subject, trace):
    model = _train(subject, trace.seed)
    spreads = [_identical_rows(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)][:2]
    return max(spreads) < 1e-6, (f"after training, the units of each hidden layer are still identical "
                                 f"(largest difference between two units' weights: {max(spreads):.2g})")


def digits_cnn_init_weights(subject, trace):
    model = _train(subject, trace.seed)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    spread = _identical_rows(first.weight)
    return spread < 1e-6, (f"after training, the {first.out_channels} filters of the first conv layer are still "
                           f"identical (largest difference: {spread:.2g}): one effective channel")


def _one_class(subject):
    targets = torch.cat([_split(b)[1].flatten() for b in _all_batches(subject)])
    values = torch.unique(targets)
    return len(values) == 1, f"{len(targets)} training targets take {len(values)} distinct value(s): {values[:5].tolist()}"


def digits_mlp_dataframe(subject, trace):
    return _one_class(subject)


def digits_cnn_keras_port(subject, trace):
    return _one_class(subject)


def digits_bn_mlp_accuracy(subject, trace):
    model = _fresh(subject, trace.seed)
    optimizer = _optimizer(subject, model)
    batches = _all_batches(subject, 4)
    subject.train_step(model, optimizer, batches[0])
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    before = bn.running_mean.clone()
    for b in batches[1:]:
        subject.train_step(model, optimizer, b)
    moved = (bn.running_mean - before).abs().max().item()
    shown = (not model.training) and moved == 0.0
    return shown, (f"after one train_step the model is in {'train' if model.training else 'eval'} mode; the "
                   f"next 3 steps moved BatchNorm's running mean by {moved:.3g} (dropout off, statistics frozen)")


def digits_cnn_bn_custom_train(subject, trace):
    model = _fresh(subject, trace.seed)
    optimizer = _optimizer(subject, model)
    model.train()
    for b in _all_batches(subject, 8):
        _step(subject, model, optimizer, b)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    untouched = all(bool((m.running_mean == 0).all() and (m.running_var == 1).all()) for m in bns)
    return untouched, (f"after 8 training steps the running statistics of all {len(bns)} BatchNorm layers are "
                       f"{'still their initial 0/1' if untouched else 'updated'}: BatchNorm never sees a batch")


def digits_rows_lstm(subject, trace):
    return _batch_mixing(subject, trace.seed)


def tokens_transformer(subject, trace):
    return _batch_mixing(subject, trace.seed)


def diabetes_mlp_regression(subject, trace):
    model = _train(subject, trace.seed)
    x = torch.cat([_split(b)[0] for b in _all_batches(subject)])
    y = torch.cat([_split(b)[1] for b in _all_batches(subject)])
    with torch.no_grad():
        pred = model(x).flatten()
    ratio = (pred.std() / y.std()).item()
    return ratio < 0.2, (f"trained predictions vary with std {pred.std().item():.3g} against the targets' "
                         f"{y.std().item():.3g} (ratio {ratio:.2f}): the (N, 1) output is compared with every target")


def digits_mlp_regression_head(subject, trace):
    model = _train(subject, trace.seed)
    x = torch.cat([_split(b)[0] for b in _all_batches(subject)])
    y = torch.cat([_split(b)[1] for b in _all_batches(subject)]).flatten()
    with torch.no_grad():
        pred = model(x).flatten().round().clamp(0, 9)
    acc = (pred == y).float().mean().item()
    return acc < 0.5, f"rounded predictions name the right digit for {acc:.0%} of the training images"


def digits_mlp_subset(subject, trace):
    from reference_models.zoo import _data

    model = _train(subject, trace.seed)
    x, y = _data.digits_flat()
    with torch.no_grad():
        pred = model(x).argmax(1)
    recalls = [(pred[y == c] == c).float().mean().item() for c in range(10)]
    share = (torch.cat([_split(b)[1] for b in _all_batches(subject)]) == 0).float().mean().item()
    balanced = sum(recalls) / 10
    return balanced < 0.6, (f"{share:.0%} of the training targets are class 0; on all 1,797 digits the "
                            f"trained model's balanced accuracy is {balanced:.2f}")


def sine_rnn(subject, trace):
    model = _fresh(subject, trace.seed)
    inputs, targets = _split(_first_batch(subject))
    subject.loss_fn(model(inputs), targets).backward()
    top = max(p.grad.abs().max().item() for p in model.parameters() if p.grad is not None)
    return top > 1e3, f"largest gradient entry at initialisation: {top:.3g}"
