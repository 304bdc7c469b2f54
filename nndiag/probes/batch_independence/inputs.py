"""The inputs batch-independence perturbs: which tensors are the model's inputs, how many samples
to take, and one sample's input changed while the others stay bit for bit."""

from __future__ import annotations

from typing import Any

import torch

from nndiag.batches import iter_tensors, map_tensors, split_batch
from nndiag.errors import ProbeSkipped, SubjectError

# Preferred sample counts: small, and unlikely to equal a feature/time size of the inputs.
SAMPLE_COUNTS = (7, 5, 11, 13, 6, 9, 10, 3, 4, 8, 2)


#: Keys of a dict batch that hold targets, not model inputs (Hugging Face's "labels" and kin).
TARGET_KEYS = {"labels", "label", "targets", "target", "y", "start_positions", "end_positions"}


def model_inputs(batch: Any, subject) -> Any:
    """The model inputs of a batch: ``inputs`` of an (inputs, targets) pair, or, for a file with
    its own training_step/train_step and dict batches (``model(**batch)``, Hugging Face style),
    the dict without its target keys. Anything else cannot be perturbed sample by sample: skip."""
    try:
        return split_batch(batch, subject.data_source)[0]
    except SubjectError:
        if isinstance(batch, dict) and (subject.training_step or subject.train_step):
            inputs = {k: v for k, v in batch.items() if k not in TARGET_KEYS}
            if inputs:
                return inputs
        if subject.training_step is None and subject.train_step is None:
            raise
    raise ProbeSkipped("the batches are neither (inputs, targets) pairs nor dicts of model "
                       "keyword arguments (the file's own step unpacks them), so the model's "
                       "inputs cannot be perturbed one sample at a time.")


def sample_count(inputs: Any) -> int:
    first = next(iter_tensors(inputs), None)
    return int(first.shape[0]) if first is not None and first.dim() > 0 else 0


def concat_inputs(parts: list[Any], sizes: list[int]) -> Any:
    """Join the inputs of several batches along dim 0 (same structure, per-sample tensors)."""
    flat = [list(iter_tensors(p)) for p in parts]
    joined = []
    for k in range(len(flat[0])):
        ts = [f[k] for f in flat]
        if all(t.dim() > 0 and t.shape[0] == s for t, s in zip(ts, sizes)):
            joined.append(torch.cat(ts, 0))
        else:
            joined.append(ts[0])
    it = iter(joined)
    return map_tensors(parts[0], lambda _t: next(it))


def per_sample_sizes(inputs: Any) -> set[int]:
    return {int(s) for t in iter_tensors(inputs) for s in t.shape[1:]}


def pick_count(inputs: Any, available: int, preferred: int) -> int:
    """A sample count <= available that differs from every per-sample size of the inputs."""
    avoid = per_sample_sizes(inputs)
    for k in (preferred,) + SAMPLE_COUNTS:
        if 2 <= k <= available and k not in avoid:
            return k
    return min(available, max(preferred, 2))


def take_samples(inputs: Any, available: int, n: int) -> Any:
    return map_tensors(inputs, lambda t: t[:n] if t.dim() > 0 and t.shape[0] == available else t)


def perturb(inputs: Any, n: int, i: int, noise: float, seed: int) -> Any | None:
    """``inputs`` with sample ``i`` changed: float tensors get Gaussian noise of ``noise`` input
    standard deviations; when there is no float input, integer tensors holding a sequence per sample
    (token ids; not per-sample scalars such as lengths) get values redrawn from their own values.
    None when nothing could be changed."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    tensors = [t for t in iter_tensors(inputs) if t.dim() > 0 and t.shape[0] == n]
    floats = any(t.is_floating_point() for t in tensors)
    changed = False

    def change(t):
        nonlocal changed
        if t.dim() == 0 or t.shape[0] != n:
            return t
        if t.is_floating_point():
            std = float(t.double().std()) if t.numel() > 1 else 1.0
            std = std if std > 0 and std == std else 1.0
            t = t.clone()
            t[i] = t[i] + noise * std * torch.randn(t[i].shape, generator=gen).to(t.device, t.dtype)
            changed = True
            return t
        if not floats and t.dim() >= 2 and t.dtype not in (torch.bool,):
            flat = t.flatten()
            if bool((flat != flat[0]).any()):
                t = t.clone()
                pick = torch.randint(0, flat.numel(), t[i].shape, generator=gen).to(t.device)
                new = flat[pick]
                if bool((new != t[i]).any()):
                    t[i] = new
                    changed = True
        return t

    out = map_tensors(inputs, change)
    return out if changed else None


def uses_batch_stats(m: torch.nn.Module) -> bool:
    """A normalisation layer that uses batch statistics in eval mode (no running statistics)."""
    bn = torch.nn.modules.batchnorm._BatchNorm
    return isinstance(m, bn) and (not m.track_running_stats or m.running_mean is None)


def identity_hook(module, inputs, output):
    """Forward hook bypassing a batch-statistics layer (as neural_net_checklist replaces them)."""
    first = inputs[0] if inputs else None
    if isinstance(first, torch.Tensor) and isinstance(output, torch.Tensor) and first.shape == output.shape:
        return first
    return None
