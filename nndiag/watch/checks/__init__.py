"""The watch's judgements: each check reads the :class:`~nndiag.watch.timeline.Timeline` at every
log interval and emits :class:`~nndiag.watch.timeline.Event` s with a step, a place and a cause.

Checks measure nothing themselves (the recorder and the samplers do), so they cost only host time
once per interval. Each module holds one family; :func:`make_checks` builds the set for a profile.
"""

from __future__ import annotations

from nndiag.watch.checks.base import Check
from nndiag.watch.checks.gradients import GradientsCheck
from nndiag.watch.checks.loss import LossCheck, PlateauCheck
from nndiag.watch.checks.nonfinite import NanCheck
from nndiag.watch.checks.replicas import ReplicasCheck
from nndiag.watch.checks.scaler import AmpCheck
from nndiag.watch.checks.units import SaturationCheck, UnitsCheck
from nndiag.watch.checks.updates import UpdatesCheck

MINIMAL = (NanCheck, LossCheck, GradientsCheck, AmpCheck)
DEFAULT = (NanCheck, LossCheck, GradientsCheck, UnitsCheck, SaturationCheck, UpdatesCheck,
           PlateauCheck, AmpCheck)


def make_checks(config) -> list[Check]:
    """The checks of ``config.profile``, in report order (``watch.replicas`` is added by
    :mod:`nndiag.watch.distributed`, in a multi-rank job only)."""
    kinds = MINIMAL if config.profile == "minimal" else DEFAULT
    return [k(config) for k in kinds]


__all__ = ["Check", "make_checks", "NanCheck", "LossCheck", "PlateauCheck", "GradientsCheck",
           "UnitsCheck", "SaturationCheck", "UpdatesCheck", "AmpCheck", "ReplicasCheck"]
