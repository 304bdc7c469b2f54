"""Train mode during training: BatchNorm and dropout layers that a step, or ``model.train()``,
leaves in eval mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from nndiag.probe import Outcome
from nndiag.probes.updates.params import common_module, name_list

if TYPE_CHECKING:
    from nndiag.probes.updates import UpdatesConfig


def check_modes(cfg: UpdatesConfig, model: torch.nn.Module, before: dict[str, bool], out: Outcome) -> None:
    """BatchNorm and dropout layers that do not train in train mode. Two cases: the step leaves
    them in eval mode (a train_step that calls model.eval() to measure accuracy and never calls
    model.train() again), or model.train() leaves BatchNorm in eval mode (a train() override:
    the frozen-BatchNorm idiom) while its running statistics are still the initial 0 and 1, so
    it never normalises by anything measured. Frozen BatchNorm with learned statistics (a
    pretrained backbone) is a pass fact."""
    kinds = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)
    mods = [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]
    flipped = [n for n, m in mods if before.get(n) and not m.training]
    out.metric("left_in_eval_mode", len(flipped))
    if flipped:
        out.fail(f"After one train_step {len(flipped)} BatchNorm/dropout layer(s) are in eval mode: "
                 f"{name_list(flipped, cfg.max_names)}. Every later step then trains with "
                 "dropout off and BatchNorm on frozen running statistics (its buffers stop "
                 "updating). If train_step calls model.eval() (to measure accuracy), call "
                 "model.train() again before it returns.", where=common_module(flipped),
                 value=len(flipped), limit=0, metric="left_in_eval_mode")
        return
    frozen = [(n, m) for n, m in mods if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
              and not before.get(n, True) and not m.training]
    if not frozen:
        return
    fresh = [n for n, m in frozen if m.track_running_stats and m.running_mean is not None
             and bool((m.running_mean == 0).all()) and bool((m.running_var == 1).all())]
    out.metric("frozen_batchnorm", len(frozen))
    if fresh:
        out.fail(f"{len(fresh)} BatchNorm layer(s) stay in eval mode while the model trains "
                 f"(model.train() leaves them so): {name_list(fresh, cfg.max_names)}, and "
                 "their running statistics are still the initial mean 0 / variance 1: they never "
                 "normalise by the data and their buffers never update. Freezing BatchNorm is for "
                 "a pretrained backbone; for a model trained from scratch let train() reach them.",
                 where=common_module(fresh), value=len(fresh), limit=0, metric="frozen_batchnorm")
    else:
        out.finding("pass", f"{len(frozen)} BatchNorm layer(s) stay in eval mode while the model "
                    "trains, on learned running statistics (the frozen-BatchNorm idiom of a "
                    "pretrained backbone).", where=common_module([n for n, _ in frozen]),
                    value=len(frozen), metric="frozen_batchnorm")
