"""What the model's structure says about its gradients, from one fresh model: weights whose units
are identical copies that no step can separate, and biases whose output goes straight into a
normalisation (a zero gradient by construction). Both computed once per run and shared."""

from __future__ import annotations

from nndiag.probe import ProbeContext


_NORMALISATIONS = {"batch_norm", "layer_norm", "group_norm", "instance_norm"}


def identical_units(ctx: ProbeContext) -> list[tuple[str, int]]:
    """Weights whose units (rows: output features, conv filters) are all identical at
    initialisation *and* get identical gradients, so no step can ever make them differ: (name,
    number of units). A zero-initialised head has identical rows too, but its rows' gradients
    differ (one per class), which breaks the tie: not reported. One fresh model; a forward and
    backward only when some weight has identical rows."""
    import torch

    from nndiag.errors import SubjectError

    def compute() -> list[tuple[str, int]]:
        model = ctx.bench.fresh_model()
        same = [(n, p) for n, p in model.named_parameters()
                if p.requires_grad and p.dim() >= 2 and p.shape[0] > 1 and bool((p == p[:1]).all())]
        if not same:
            return []
        try:
            loss = ctx.bench.compute_loss(model, ctx.bench.first_batch())
            ctx.bench.backward(loss)
        except SubjectError:
            return []  # no loss to differentiate (a train_step only): not decided
        out = []
        for n, p in same:
            g = p.grad
            if g is None:
                continue
            scale = float(g.abs().max())
            if scale == 0 or torch.allclose(g, g[:1].expand_as(g), rtol=1e-4, atol=1e-6 * scale):
                out.append((n, int(p.shape[0])))
        return out

    return ctx.shared("identical_units", compute)


def biases_before_normalisation(ctx: ProbeContext) -> set[str]:
    """Names of biases of modules whose output goes straight into a normalisation op.

    ``Conv2d(bias=True)`` followed by ``BatchNorm2d`` is common in healthy nets: the normalisation
    subtracts the per-channel mean, so the bias gets an exactly-zero gradient (up to rounding).
    That is redundancy, not a vanishing gradient. Found by one traced forward on the first batch.
    """
    def compute() -> set[str]:
        import torch

        from nndiag.torchhooks import CallTracer

        from nndiag.errors import SubjectError

        model = ctx.bench.fresh_model()
        producers: set[str] = set()
        tracer = CallTracer(model, ops=_NORMALISATIONS,
                            on_call=lambda info: info.producer is not None and producers.add(info.producer))
        try:
            with tracer.active(), torch.no_grad():
                ctx.bench.compute_loss(model, ctx.bench.first_batch())
        except SubjectError:
            return set()  # cannot trace this batch format: no exemption, the verdicts stand
        names = dict(model.named_parameters())
        return {f"{p}.bias" if p else "bias" for p in producers} & set(names)

    return ctx.shared("biases_before_normalisation", compute)
