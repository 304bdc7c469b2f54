"""Comparing a traced run with one where a single sample's input was perturbed: which other
samples' values moved, where samples first mix, and the hint for that kind of mixing."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nndiag.batches import iter_tensors

RESHAPE_OPS = {"view", "reshape", "flatten", "unflatten", "view_as", "reshape_as", "as_strided"}
SOFTMAX_OPS = {"softmax", "log_softmax", "softmin"}
REDUCE_OPS = {"mean", "sum", "std", "var", "norm", "max", "min", "amax", "amin", "logsumexp",
               "std_mean", "var_mean", "cumsum", "prod"}


@dataclass
class Event:
    label: str  # "Tensor.view" or "lstm (LSTM)"
    path: str  # module path it ran in (or the module itself)
    kind: str  # "op" or "module"
    op: str
    tensors: list[torch.Tensor]
    rnn_hint: bool = False  # an RNN with batch_first=False fed batch-first data


GENERIC_HINT = ("Look for a view/reshape used where permute/transpose was meant, a softmax or "
            "statistic over dim 0, or an RNN whose batch_first does not match the data.")


def mixing_hint(first: Event, first_module: Event | None, via: Event | None = None) -> str:
    for ev in (first, first_module):
        if ev is not None and ev.rnn_hint:
            return (f"{ev.label} has batch_first=False but receives batch-first data (N, T, F): it "
                    "reads the batch as time steps. Create it with batch_first=True, or feed it "
                    "x.transpose(0, 1).")
    op = first.op
    if first.kind == "op" and op in RESHAPE_OPS:
        return ("view/reshape only regroups memory: used to swap the batch and another dimension "
                "(e.g. x.view(T, N, F) on (N, T, F) data) it interleaves samples. Use "
                "x.permute(1, 0, 2) / x.transpose(0, 1) instead.")
    if first.kind == "op" and op in SOFTMAX_OPS:
        return (f"{first.label} normalises over the batch dimension (dim=0): pass dim=-1 (or the "
                "class dimension). nn.Softmax()/F.softmax without dim picks dim 0 for 0-, 1- and "
                "3-D inputs.")
    if (first.kind == "op" and op in REDUCE_OPS) or via is not None:
        return ("A statistic is taken over the batch dimension (dim=0): take it per sample "
                "(dim=-1), or use nn.BatchNorm (running statistics in eval mode) or nn.LayerNorm.")
    return ("A statistic over the batch (a hand-written normalisation with mean/std over dim 0) "
            "feeds this operation: compute it per sample, or use nn.BatchNorm (running statistics "
            "in eval mode) or nn.LayerNorm. " + GENERIC_HINT)


# ---- comparing two traced runs -------------------------------------------------------------------
def changed_mask(a: torch.Tensor, b: torch.Tensor, tol: float) -> torch.Tensor | None:
    """Element-wise 'differs' (None when bit-identical): beyond ``tol`` times the tensor's largest
    finite value for floats, any difference for other dtypes."""
    if torch.equal(a, b):
        return None
    if a.is_floating_point() or a.is_complex():
        a_nan, b_nan = torch.isnan(a), torch.isnan(b)
        finite = torch.nan_to_num(a.abs(), nan=0.0, posinf=0.0, neginf=0.0)
        scale = float(finite.max()) if finite.numel() else 1.0
        diff = torch.nan_to_num((a - b).abs(), nan=0.0, posinf=float("inf"))
        return (diff > tol * max(scale, 1e-30)) | (a_nan ^ b_nan)
    return a != b


def batch_slices(mask: torch.Tensor, d: int) -> torch.Tensor:
    """Indices along dim ``d`` where ``mask`` has any True."""
    other = [k for k in range(mask.dim()) if k != d]
    return (mask.any(dim=other) if other else mask).nonzero().flatten()


def one_sample(mask: torch.Tensor, n: int, index: int | None) -> tuple[bool | None, int]:
    """Whether the changes fit one sample along some batch-like dimension (None: no such dim),
    and the fewest samples touched along a size-n dimension."""
    verdict = None
    touched = mask.shape[0] if mask.dim() else 1
    for d, size in enumerate(mask.shape):
        if size == n:
            idx = batch_slices(mask, d)
            touched = min(touched, len(idx))
            ok = len(idx) <= 1 and (index is None or len(idx) == 0 or int(idx[0]) == index)
        elif index is None and size > n and size % n == 0:
            m = size // n
            idx = batch_slices(mask, d)
            ok = len(idx) == 0 or len(set((idx // m).tolist())) == 1 or len(set((idx % n).tolist())) == 1
        else:
            continue
        verdict = ok if verdict is None else (verdict or ok)
        if verdict:
            return True, touched
    return verdict, touched


def compare_runs(base: list[Event], pert: list[Event], base_out, pert_out, n: int, i: int,
             tol: float) -> dict:
    first = first_module = via = None
    first_index = None
    for k, (e0, e1) in enumerate(zip(base, pert)):
        if e0.label != e1.label or len(e0.tensors) != len(e1.tensors):
            break  # control flow depends on the data: later events cannot be paired
        mixed = False
        for a, b in zip(e0.tensors, e1.tensors):
            if a.shape != b.shape:
                mixed = None
                break
            mask = changed_mask(a, b, tol)
            if mask is None or not bool(mask.any()):
                continue
            ok, _ = one_sample(mask, n, None)
            if ok is None and first is None:
                via = e0 if e0.kind == "op" and e0.op in REDUCE_OPS else via
            if ok is False:
                mixed = True
        if mixed is None:
            break
        if mixed:
            if first is None:
                first, first_index = e0, k
            if e0.kind == "module" and first_module is None:
                first_module = e0
                break
    if first is None:
        via = None
    out_mixed, affected, max_change, own = False, 0, 0.0, False
    for a, b in zip(iter_tensors(base_out), iter_tensors(pert_out)):
        if a.shape != b.shape:
            continue
        mask = changed_mask(a, b, tol)
        d = output_batch_dim(a, n)
        if d is None or mask is None:
            continue
        own = own or bool(mask.select(d, i).any())
        idx = batch_slices(mask, d)
        others = [int(j) for j in idx if int(j) != i]
        if others:
            out_mixed = True
            affected = max(affected, len(others))
            if a.is_floating_point():
                diff = (a.double() - b.double()).abs()
                scale = max(float(a.double().abs().max()), 1e-30)
                keep = torch.ones(n, dtype=torch.bool)
                keep[i] = False
                max_change = max(max_change, float(diff.index_select(d, keep.nonzero().flatten().to(diff.device)).max()) / scale)
    return {"first": first, "first_module": first_module, "first_index": first_index, "via": via,
            "output_mixed": out_mixed, "affected": affected, "max_change": max_change,
            "own_changed": own}


def output_batch_dim(t: torch.Tensor, n: int) -> int | None:
    """The batch dimension of a model output: 0 when it has size n, else the first of size n."""
    if t.dim() == 0:
        return None
    if t.shape[0] == n:
        return 0
    for d, size in enumerate(t.shape):
        if size == n:
            return d
    return None


# ---- inputs ----------------------------------------------------------------------------------
