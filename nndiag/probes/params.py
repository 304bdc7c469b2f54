"""``params``: parameter counts per layer and in total, trainable and frozen.

Shared (tied) parameters are counted once, at the first module that owns them: torchinfo 1.8.0
counts a tied embedding/output weight twice (torchinfo #322, #377; checked in
tests/test_probe_params.py), so the counts here are our own, deduplicated by identity, and torchinfo
supplies the layer table's output shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nndiag.batches import split_batch
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold


@dataclass(frozen=True)
class ParamsConfig:
    """Settings of the params probe."""

    expected_total: int | None = threshold(
        None, "the user's own expectation (nndiag_config)", "fail when the total differs")
    expected_trainable: int | None = threshold(
        None, "the user's own expectation (nndiag_config)", "fail when the trainable count differs")


@dataclass(frozen=True)
class LayerCount:
    """Parameters owned directly by one module (not its children)."""

    path: str
    kind: str
    trainable: int
    frozen: int
    shared_with: tuple[str, ...] = ()  # parameters already counted at these modules

    @property
    def total(self) -> int:
        """trainable + frozen."""
        return self.trainable + self.frozen


def count_parameters(model: torch.nn.Module) -> list[LayerCount]:
    """Per module, its own parameters; a parameter seen before (tied) counts only at its first owner."""
    owner: dict[int, str] = {}
    layers = []
    for path, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        trainable = frozen = 0
        shared = []
        for _, p in own:
            if id(p) in owner:
                shared.append(owner[id(p)])
                continue
            owner[id(p)] = path or "<model>"
            if p.requires_grad:
                trainable += p.numel()
            else:
                frozen += p.numel()
        layers.append(LayerCount(path or "<model>", type(module).__name__, trainable, frozen,
                                 tuple(dict.fromkeys(shared))))
    return layers


def _output_shapes(model: torch.nn.Module, ctx: ProbeContext) -> dict[str, list[int]]:
    """Layer output shapes from torchinfo on the first batch; empty when that is not possible."""
    import torchinfo

    try:
        inputs, _ = split_batch(ctx.bench.first_batch())
    except SubjectError:
        return {}
    try:
        with ctx.bench.precision.autocast():  # as every forward of the check (--autocast)
            stats = torchinfo.summary(model, input_data=inputs, verbose=0, device=ctx.device)
    except Exception:  # noqa: BLE001 - shapes are a nicety; a forward failure is reported elsewhere
        return {}
    names = {id(m): (n or "<model>") for n, m in model.named_modules()}
    out = {}
    for layer in stats.summary_list:
        module = getattr(layer, "module", None)
        if module is not None and id(module) in names and isinstance(layer.output_size, list):
            out.setdefault(names[id(module)], list(layer.output_size))
    return out


class ParamsProbe(Probe):
    """Counts parameters per layer; flags layers frozen among trainable ones and a wrong total."""

    id = "params"
    cost = 10  # the order of a check: cheapest first
    hint = ('a changed count means a layer size changed, or layers sit in a plain list/dict instead '
            'of nn.ModuleList/nn.ModuleDict')
    description = "Parameter counts per layer (trainable, frozen; shared weights counted once)."
    Config = ParamsConfig

    def charts(self, result):
        """The parameters per layer, as a table: nndiag.charts data."""
        from nndiag import chartkit

        table = chartkit.params_table(result)
        return [table] if table is not None else []

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        model = ctx.bench.fresh_model()
        layers = count_parameters(model)
        trainable = sum(l.trainable for l in layers)
        frozen = sum(l.frozen for l in layers)
        total = trainable + frozen
        shapes = _output_shapes(model, ctx)
        out.metric("total", total)
        out.metric("trainable", trainable)
        out.metric("frozen", frozen)
        out.metric("layers", len(layers))
        out.data["layers"] = [
            {"layer": l.path, "type": l.kind, "trainable": l.trainable, "frozen": l.frozen,
             "shared_with": list(l.shared_with), "output_shape": shapes.get(l.path)}
            for l in layers
        ]
        if total == 0:
            out.fail("The model has no parameters, so nothing can be trained. Register layers as "
                     "attributes (nn.ModuleList, not a plain list).", where="<model>", value=0,
                     metric="total")
        elif trainable == 0:
            out.fail("Every parameter is frozen (requires_grad=False): training would change nothing. "
                     "Unfreeze the layers you mean to train.", where="<model>", value=0, metric="trainable")
        else:
            random = self._frozen_random(ctx, model)
            self._frozen_fact(out, layers, frozen, random)
            if random:
                self._frozen_blocks_fit(ctx, out, layers)
        self._check_expected(out, "total", total, self.config.expected_total)
        self._check_expected(out, "trainable", trainable, self.config.expected_trainable)
        shared = sum(len(l.shared_with) > 0 for l in layers)
        out.summary = (f"{total:,} parameters ({trainable:,} trainable, {frozen:,} frozen) in "
                       f"{len(layers)} layers" + (f"; {shared} layer(s) share weights, counted once" if shared else ""))

    @staticmethod
    def _frozen_random(ctx: ProbeContext, model: torch.nn.Module) -> bool | None:
        """Whether every frozen weight (2 or more dims) is a fresh random draw: it changes when the model is
        built under another seed (never loaded from a checkpoint or a fixed table). None when
        nothing is frozen or the second build fails.

        A fact, not a verdict: on the zoo both a frozen random embedding table (a bug:
        ``from_pretrained`` freezes by default) and a frozen randomly initialised ResNet backbone
        (the transfer-learning recipe without the download) are random (docs/probes/params.md).
        """
        # Weight matrices and kernels only: biases and normalisation scales start at fixed
        # constants (0, 1), which no seed changes.
        frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad and p.dim() >= 2}
        if not frozen:
            return None
        try:
            other = dict(ctx.bench.fresh_model(seed=ctx.seed + 1).named_parameters())
        except Exception:  # noqa: BLE001 - a model that cannot be built twice: no fact
            return None
        return all(n in other and other[n].shape == p.shape and not torch.equal(other[n], p)
                   for n, p in frozen.items())

    @staticmethod
    def _frozen_fact(out: Outcome, layers: list[LayerCount], frozen: int,
                     random: bool | None = None) -> None:
        """Frozen layers among trainable ones: one fact, not a warning per layer.

        A frozen backbone with a new head is how fine-tuning is done; nothing in the parameter
        counts says whether the freezing was meant. A parameter that should train but does not is
        the ``updates`` probe's business (it checks what the optimizer holds and changes).
        """
        frozen_layers = [l for l in layers if l.trainable == 0 and l.frozen > 0]
        if not frozen_layers:
            return
        shown = ", ".join(l.path for l in frozen_layers[:6])
        more = f" and {len(frozen_layers) - 6} more" if len(frozen_layers) > 6 else ""
        if random is not None:
            out.metric("frozen_random", random)
        drawn = (" Their values are random draws (they change with the seed): nothing was loaded "
                 "into them, so they stay at their initialisation; if they were meant to hold "
                 "pretrained weights, load them (or pass freeze=False to from_pretrained)."
                 if random else "")
        out.finding("pass", f"{len(frozen_layers)} layer(s) are frozen ({frozen:,} parameters, "
                    f"requires_grad=False) while others train: {shown}{more}. Fine for a "
                    "deliberately frozen backbone; otherwise set requires_grad=True." + drawn,
                    where=frozen_layers[0].path, value=frozen, metric="frozen")

    @staticmethod
    def _frozen_blocks_fit(ctx: ProbeContext, out: Outcome, layers: list[LayerCount]) -> None:
        """Fail when frozen random layers are what stops the model fitting one batch: frozen it
        does not fit in the overfit run's whole step budget, unfrozen the same run fits
        (:mod:`nndiag.probes.frozen_fit`)."""
        from nndiag.probes.frozen_fit import frozen_layers_block_fit

        got = frozen_layers_block_fit(ctx)
        if got is None:
            return
        frozen_layers = [l for l in layers if l.trainable == 0 and l.frozen > 0]
        where = frozen_layers[0] if frozen_layers else None
        acc = f", batch accuracy {got.frozen_accuracy:.0%}" if got.frozen_accuracy is not None else ""
        out.metric("frozen_fit_steps", got.frozen_steps)
        out.metric("unfrozen_fit_steps", got.unfrozen_steps)
        out.fail(f"The frozen layers stop the model from fitting one batch: frozen, it did not fit "
                 f"it in {got.frozen_steps} steps (loss down {got.frozen_drop:.0%}{acc}); with "
                 f"them trainable, the same run fits it in {got.unfrozen_steps} steps. Their weights "
                 "are random draws, not loaded ones. Load the pretrained weights you meant, or let "
                 "them train (from_pretrained freezes by default: pass freeze=False).",
                 where=where.path if where else "<model>",
                 value=got.frozen_steps, metric="frozen_fit_steps")

    @staticmethod
    def _check_expected(out: Outcome, what: str, got: int, expected: Any) -> None:
        if expected is not None and int(expected) != got:
            out.fail(f"The model has {got:,} {what} parameters; the params.expected_{what} setting "
                     f"expects {int(expected):,}. "
                     "A layer size changed, or the expectation needs updating.",
                     where="<model>", value=got, limit=int(expected), metric=what)


@hookimpl
def nndiag_register_probes():
    """Register the params probe."""
    return [ParamsProbe]
