"""The user's mistakes as messages: what the user's code raised, or returned that no probe can
use, turned into a :class:`~nndiag.errors.SubjectError` naming the problem and the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from nndiag.batches import batch_size, describe_shapes, iter_tensors
from nndiag.errors import SubjectError, describe_exception
from nndiag.isolation import ProcessExit

if TYPE_CHECKING:
    from nndiag.subject import Subject

DATA_EXAMPLE = (
    "    def sample_batch():\n"
    "        return torch.randn(32, 784), torch.randint(0, 10, (32,))"
)
LOSS_HINT = (
    "Define loss_fn (or criterion), e.g. `loss_fn = torch.nn.CrossEntropyLoss()`, or a "
    "training_step(model, batch) that returns the loss."
)


def call_error(exc: BaseException, what: str, subject: Subject) -> SubjectError:
    """The SubjectError for an exception (or an exit) raised by the user's ``what``."""
    if isinstance(exc, SystemExit):
        return exit_error(what, f"sys.exit({exc.code})")
    if isinstance(exc, ProcessExit):
        return exit_error(what, str(exc))
    return SubjectError(
        f"{what} raised {describe_exception(exc).rstrip('.')}.",
        hint=_call_hint(exc, what, subject),
    )


def forward_error(exc: BaseException, inputs: Any, source: str) -> SubjectError:
    """The SubjectError for an exception (or an exit) raised by the model's forward on ``inputs``."""
    if isinstance(exc, SystemExit):
        return exit_error("the model's forward", f"sys.exit({exc.code})")
    if isinstance(exc, ProcessExit):
        return exit_error("the model's forward", str(exc))
    return SubjectError(
        f"The model's forward raised {describe_exception(exc).rstrip('.')} on inputs of shape "
        f"{describe_shapes(inputs)}.",
        hint=_forward_hint(exc, inputs, source),
    )


def exit_error(what: str, how: str) -> SubjectError:
    """The SubjectError for user code that tried to end the process."""
    return SubjectError(
        f"{what} called {how}, which would end nndiag's process.",
        hint="Remove the exit from the code nndiag calls (raise an exception instead); put script "
        "code under `if __name__ == '__main__':`.",
    )


def _role(what: str, subject: Subject) -> str:
    """Whose part of the model file ``what`` is: its model, data, loss, optimizer or train_step."""
    if what.startswith(("build_optimizer",)):
        return "optimizer (build_optimizer)"
    if what.startswith("train_step"):
        return "train_step"
    if "loss" in what or what.startswith("training_step"):
        return "loss"
    if subject.data_source in what:
        return "data"
    return "model"


#: What torch says when one op gets tensors on two devices (CPU and CUDA).
_DEVICE_ERRORS = ("Expected all tensors to be on the same device", "found at least two devices")
DEVICE_HINT = ("nndiag moves the model, the batches and the loss module to the device it checks on "
               "(--device); a tensor the code makes itself stays on the CPU: create it on the "
               "device of the data (`torch.zeros(n, h, device=x.device)`), or register it as a "
               "buffer (self.register_buffer) so it moves with the model.")


def device_mismatch(exc: BaseException) -> bool:
    """True when ``exc`` is torch's error for tensors on different devices in one op."""
    return any(s in str(exc) for s in _DEVICE_ERRORS)


def _call_hint(exc: BaseException, what: str, subject: Subject) -> str:
    """The fix for an exception in user code: whose code it is, and the usual causes."""
    text = str(exc)
    hint = (f"The problem is in the file's {_role(what, subject)} ({what}); "
            "fix it there (run with --traceback to see the line).")
    if isinstance(exc, TypeError) and ("argument" in text) and "(" in what:
        hint += f" nndiag calls it as {what}: give it exactly that signature."
    if device_mismatch(exc):
        hint += " " + DEVICE_HINT
    if "dtype" in text or "scalar type" in text or "can't be cast" in text:
        hint += (" Check the dtypes: class ids for CrossEntropyLoss/NLLLoss are int64 (`y.long()`), "
                 "while MSELoss, L1Loss and the BCE losses need float targets (`y.float()`).")
    return hint


def _forward_hint(exc: BaseException, inputs: Any, source: str) -> str:
    """The fix for a forward that raised, from the error and the inputs' types."""
    text = str(exc)
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in iter_tensors(inputs)})
    if device_mismatch(exc):
        return DEVICE_HINT
    if "dtype" in text or "scalar type" in text:
        if any(d.startswith(("int", "uint", "bool")) for d in dtypes):
            return (f"{source} gives {'/'.join(dtypes)} inputs to layers with float weights: convert "
                    "them, e.g. `x.float()` (keep integer ids only for nn.Embedding inputs).")
        return (f"The inputs are {'/'.join(dtypes)} and the weights have another dtype: convert one "
                "side, e.g. `x.float()` or `model.float()` (or `x.double()` for a float64 model).")
    if "unexpected keyword argument" in text and isinstance(inputs, dict):
        return ("A dict of inputs is passed as keyword arguments (model(**inputs)): name its keys "
                "after forward()'s parameters, or give a tensor or a tuple instead.")
    return f"Make {source} return inputs the model accepts, or fix the layer named in the error."


def check_model(model: Any, source: str) -> None:
    """SubjectError unless ``model`` (from ``source``) is an nn.Module with real (not meta) tensors."""
    if not isinstance(model, torch.nn.Module):
        extra = (" If it builds the optimizer too, return only the model and move the optimizer "
                 "into build_optimizer(params)." if isinstance(model, (tuple, list)) else "")
        raise SubjectError(
            f"{source} returned a {type(model).__name__}, not a torch.nn.Module.",
            hint="Return the model object, e.g. `def build_model(): return MyNet()` (a missing "
            "`return` gives None)." + extra,
        )
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        raise SubjectError(
            f"The model from {source} has its parameters on the meta device (shapes without data), "
            "so nothing can run on it.",
            hint="Build it on a real device, or materialise it: `model.to_empty(device='cpu')` and "
            "then initialise or load its weights (load_state_dict(..., assign=True)).",
        )


def check_batch(batch: Any, source: str, first: bool) -> None:
    """SubjectError for batches no probe can use: numpy arrays, meta tensors, no samples."""
    import numpy as np

    def has_numpy(obj: Any) -> bool:
        if isinstance(obj, np.ndarray):
            return True
        if isinstance(obj, dict):
            return any(has_numpy(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return any(has_numpy(v) for v in obj)
        return False

    if has_numpy(batch):
        raise SubjectError(
            f"{source} gave numpy arrays (ndarray), not torch tensors.",
            hint="Convert them: `torch.from_numpy(x)` (or torch.as_tensor), or use a DataLoader, "
            "which does it for you.",
        )
    tensors = list(iter_tensors(batch))
    if any(t.is_meta for t in tensors):
        raise SubjectError(
            f"{source} gave tensors on the meta device (shapes without data), so nothing can run on them.",
            hint="Create the batch on a real device, e.g. torch.randn(32, 784) (device='cpu').",
        )
    if tensors and batch_size(batch) == 0:
        raise SubjectError(
            f"{source} gave a batch with no samples (its first dimension is 0).",
            hint="Check that the dataset or the slice it comes from is not empty.",
        )


def check_loss(loss: Any, what: str) -> torch.Tensor:
    """``loss`` if it is a scalar tensor; otherwise a SubjectError saying how to reduce it."""
    if not isinstance(loss, torch.Tensor):
        raise SubjectError(
            f"{what} returned a {type(loss).__name__}, not a tensor.",
            hint="Return the loss tensor itself (not loss.item()), so it can be backpropagated.",
        )
    if loss.numel() != 1:
        raise SubjectError(
            f"{what} returned a tensor of shape {tuple(loss.shape)}; nndiag needs a scalar loss.",
            hint="Reduce it, e.g. use reduction='mean' in the loss or return loss.mean().",
        )
    return loss.reshape(())


def loss_as_float(value: Any, what: str) -> float:
    """A loss value (tensor or number) returned by user code as a float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise SubjectError(
                f"{what} returned a tensor of shape {tuple(value.shape)}; nndiag needs the scalar loss.",
                hint="Return loss (or loss.item()) after the update.",
            )
        return float(value.detach())
    if isinstance(value, (int, float)):
        return float(value)
    raise SubjectError(
        f"{what} returned {type(value).__name__}; nndiag needs the loss of the step.",
        hint="End train_step with `return loss.item()` (or the loss tensor).",
    )
