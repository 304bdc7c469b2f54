"""What is checked: a model (or a factory), its data, its loss and how it trains.

A :class:`Subject` holds the user's objects as found (in a model file or passed to
``nndiag.check``); :func:`copy_user_model` makes a given model instance a factory of copies. The
:class:`~nndiag.workbench.Workbench` binds a subject to a device and a seed and runs it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch


@dataclass
class Subject:
    """The user's objects, as found. Exactly what the contract (§1) names, nothing derived.

    ``model_factory`` returns a new model each call (``build_model``, or a deep copy of a given
    ``model`` instance so the user's own object is never touched). ``batches`` returns an iterable
    of batches (``sample_batch`` wrapped as a one-batch list, ``train_loader``, ``dataloader()``).
    """

    name: str
    model_factory: Callable[[], torch.nn.Module]
    batches: Callable[[], Iterable[Any]] | None = None
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None
    optimizer_factory: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None
    training_step: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None
    train_step: Callable[[torch.nn.Module, torch.optim.Optimizer, Any], Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    # the state dict of ``weights``, read once (by the loader's fit check, else the first model)
    weights_state: Any = field(default=None, repr=False, compare=False)
    # Which user names these came from, so messages say "sample_batch()" rather than "the data".
    model_source: str = "build_model()"
    data_source: str = "sample_batch()"
    user_model: torch.nn.Module | None = None  # the user's own instance, never modified

    @property
    def trained(self) -> bool:
        """True when trained weights are loaded into every fresh model (``--weights`` or
        ``nndiag_config["weights"]``): probes then skip judgements that only hold at
        initialisation (loss near ln C, unsaturated outputs, a descending LR curve)."""
        return self.weights is not None


def copy_user_model(model: torch.nn.Module) -> Callable[[], torch.nn.Module]:
    """A factory of deep copies of the user's model: probes never touch the user's instance."""
    if isinstance(model, torch.jit.ScriptModule):
        # deepcopy of a ScriptModule gives non-leaf parameters no optimizer accepts; a saved and
        # reloaded copy is a true one.
        import io

        buffer = io.BytesIO()
        torch.jit.save(model, buffer)

        def reload() -> torch.nn.Module:
            buffer.seek(0)
            return torch.jit.load(buffer, map_location="cpu")

        return reload
    return lambda: copy.deepcopy(model)


def loss_on_device(loss_fn: Any, device: str | torch.device) -> Any:
    """The user's loss, usable on ``device``: a loss module holding tensors on another device
    (``CrossEntropyLoss(weight=w)``, ``BCEWithLogitsLoss(pos_weight=w)``) is copied and the copy
    moved, as the model is; the user's own object never moves. Anything else is returned as is
    (a plain function's captured tensors cannot be moved: its error then says how to fix it)."""
    if not isinstance(loss_fn, torch.nn.Module):
        return loss_fn
    want = torch.device(device)
    held = [*loss_fn.parameters(), *loss_fn.buffers()]
    if all(t.device.type == want.type and want.index in (None, t.device.index) for t in held):
        return loss_fn
    return copy.deepcopy(loss_fn).to(want)
