"""The watch's settings: schedule, thresholds (each citing where its number comes from) and policies.

A threshold's source is either the prior art (cited by tool or paper) or a measurement on
healthy runs of the reference models, made with the command given in docs/watch.md ("healthy
runs"). Policies say what a check does when it finds something: ``report`` (only in the report),
``warn`` (also printed as it happens) or ``stop`` (also stops training:
:class:`~nndiag.watch.TrainingStopped` in a plain loop, the trainer's stop flag in Lightning and
transformers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from nndiag.errors import UsageError
from nndiag.probe import threshold

POLICIES = ("report", "warn", "stop")
CHECKS = ("watch.nan", "watch.loss", "watch.gradients", "watch.units", "watch.saturation",
          "watch.updates", "watch.plateau", "watch.amp", "watch.replicas")
DEFAULT_POLICY = {
    "watch.nan": "stop",  # every later step is wasted, and the weights are about to be corrupted
    "watch.amp": "stop",  # a collapsed scale means no update is applied any more
    "watch.loss": "warn", "watch.gradients": "warn", "watch.units": "warn",
    "watch.saturation": "warn", "watch.updates": "warn", "watch.plateau": "report",
    # DDP only: an unused parameter would hang or crash DDP at the next step; diverged replicas
    # train different models
    "watch.replicas": "stop",
}
PROFILES = ("default", "minimal")  # minimal: every-step finiteness + grad norm only


@dataclass(frozen=True)
class WatchConfig:
    """Every number the watch's checks use. Override any with ``nndiag.watch(..., name=value)``."""

    log_every: int = threshold(25, "own choice: one host sync per 25 steps keeps the CUDA pipeline "
                               "full (torchtitan #4226 avoids per-step syncs)",
                               "steps between host syncs, judgements and progress lines")
    norm_every: int = threshold(
        0, "own measurement (docs/watch.md): one full gradient-norm pass took about 7% of the "
        "reference MLP's CPU step; 0 = every step on CUDA, every 5th on CPU",
        "steps between full per-parameter gradient norms (the small parameters are checked every step)")
    sample_every: int = threshold(50, "own choice: dead units, saturation and update "
                                  "ratio every N=50 steps (wandb's default is 1000)",
                                  "steps between per-layer samples (activations, update ratios)")
    # --- loss
    spike_sigma: float = threshold(6.0, "OLMo-core StabilityMonitor / SkipStepOptimizer: 6 sigma "
                                   "over a 128-step window", "a loss spike is this many std above "
                                   "the window's mean")
    spike_window: int = threshold(128, "OLMo-core (128-step window)", "steps in the spike window")
    spike_warmup: int = threshold(20, "own choice: 20 steps of warm-up before the OLMo-core "
                                  "z-score rule",
                                  "steps before spikes are judged")
    divergence_factor: float = threshold(
        3.0, "own measurement (docs/watch.md): healthy block medians reach 3.8x the best late in the "
        "seq_classifier's 2500 steps, but never give back half of the progress (the second condition)",
        "divergence when a window's median loss exceeds this times the best window median so far")
    # --- gradients
    exploding_growth: float = threshold(
        1e3, "own measurement (docs/watch.md): healthy layers grow at most 11x over their early norm "
        "(seq_classifier); 1e3 keeps two orders of margin", "a layer explodes when its gradient norm "
        "exceeds this times its early median")
    exploding_abs: float = threshold(1e6, "TheDeepChecker: exploding when |g| > 1e6",
                                     "a layer explodes when its gradient norm exceeds this")
    vanishing_ratio: float = threshold(
        1e-3, "AUTOTRAINER (Zhang et al., ICSE 2021): first/last-layer norm ratio < 1e-3; "
        "healthy layers keep 0.63 or more of the last layer's relative norm (docs/watch.md)", "a layer vanishes when its "
        "norm over its early norm falls this much below the last layer's")
    vanishing_abs: float = threshold(1e-7, "torchdiag: vanishing when max |g| < 1e-7",
                                     "a layer vanishes when its gradient norm falls below this")
    sustain: int = threshold(2, "own choice: one bad log interval can be noise", "consecutive log "
                             "intervals a per-layer condition must hold before it is reported")
    # --- units
    dead_warn_fraction: float = threshold(0.2, "torchdiag (warn at 20% dead units), as the "
                                          "dead-neurons probe", "warn above this dead fraction")
    dead_fail_fraction: float = threshold(0.5, "TheDeepChecker, SageMaker Debugger (50%), as the "
                                          "dead-neurons probe", "fail above this dead fraction")
    dead_min_observations: int = threshold(
        32, "the dead-neurons probe's min_distinct_samples (own measurement, docs/probes/dead-neurons.md)",
        "with fewer inputs per sample only an entirely dead site is reported")
    saturation_input: float = threshold(5.0, "DeepDiagnosis (inputs beyond +-5), as the saturation "
                                        "probe", "an observation is saturated beyond this |input|")
    saturation_unit: float = threshold(0.85, "TheDeepChecker (saturation ratio > 0.85)",
                                       "a unit is saturated above this fraction of observations")
    saturation_warn_fraction: float = threshold(0.2, "as the saturation probe",
                                                "warn above this saturated-unit fraction")
    # --- updates
    update_ratio_low: float = threshold(1e-6, "TheDeepChecker band [1e-4, 1e-1] widened below by "
                                        "own measurement: the healthy LSTM reaches 1.5e-5 (docs/watch.md)",
                                        "warn below this update/weight ratio")
    update_ratio_high: float = threshold(
        1.0, "TheDeepChecker warns above 1e-1; raised to 1 by own measurement: the healthy XOR "
        "reference (Adam, lr 0.1) reaches 0.4 (docs/watch.md)", "warn above this update/weight ratio")
    frozen_samples: int = threshold(3, "own choice (three samples in a row, 150 steps by default)",
                                    "samples without any change before a parameter 'stopped updating'")
    # --- plateau
    plateau_steps: int = threshold(400, "own choice: over three epochs of the reference MLP/CNN "
                                   "(125 steps each)",
                                   "steps without a 1% improvement of the window median loss")
    plateau_high: float = threshold(0.5, "own choice: a plateau above half the initial loss is "
                                    "'not learning'; below it, 'converged'", "fraction of the initial "
                                    "loss above which a plateau warns")
    # --- AMP
    amp_min_scale: float = threshold(1.0, "DeepSpeed min_loss_scale default 1 (aborts there, "
                                     "DeepSpeed#5426)", "a GradScaler scale below this has collapsed")
    amp_max_consecutive_skips: int = threshold(20, "own choice: error only after more than K=20 "
                                               "consecutive skips (no monitor gives this "
                                               "verdict)", "consecutive skipped steps reported as "
                                               "divergence, not warm-up")
    # --- replicas (DDP)
    replica_rtol: float = threshold(
        1e-6, "own measurement (docs/distributed.md): healthy DDP replicas were bitwise equal after "
        "200 steps (2 gloo ranks, seeds 0-2); 1e-6 leaves room for a reduction order that differs by rank",
        "parameters (or buffers) differ across replicas above this relative difference of their norm or sum")
    policy: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICY))
    profile: str = "default"

    def policy_of(self, check: str) -> str:
        """The policy applied to ``check``."""
        return self.policy.get(check, DEFAULT_POLICY.get(check, "warn"))


def make_config(config: WatchConfig | None, policy: str | Mapping[str, str] | None,
                profile: str | None, overrides: Mapping[str, Any]) -> WatchConfig:
    """A WatchConfig from the keywords of ``nndiag.watch``; UsageError naming a bad one."""
    base = config or WatchConfig()
    names = {f.name for f in dataclasses.fields(WatchConfig)} - {"policy", "profile"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise UsageError(f"nndiag.watch got unknown setting(s): {', '.join(unknown)}.",
                         hint="Known settings: " + ", ".join(sorted(names)) + ".")
    pol = dict(base.policy)
    if isinstance(policy, str):
        pol = {c: policy for c in CHECKS}
    elif policy:
        for check, value in policy.items():
            key = check if check.startswith("watch.") else f"watch.{check}"
            if key not in CHECKS:
                raise UsageError(f"policy for unknown check {check!r}.",
                                 hint="Checks: " + ", ".join(CHECKS) + ".")
            pol[key] = value
    for check, value in pol.items():
        if value not in POLICIES:
            raise UsageError(f"policy {value!r} for {check} is not one of {', '.join(POLICIES)}.",
                             hint="Use report, warn or stop.")
    prof = profile or base.profile
    if prof not in PROFILES:
        raise UsageError(f"profile {prof!r} is not one of {', '.join(PROFILES)}.",
                         hint="'default' runs every check; 'minimal' only finiteness and grad norms.")
    for key in ("log_every", "sample_every"):
        if key in overrides and (not isinstance(overrides[key], int) or overrides[key] < 1):
            raise UsageError(f"{key}={overrides[key]!r} must be a positive integer.",
                             hint=f"e.g. {key}=25.")
    return dataclasses.replace(base, policy=pol, profile=prof, **dict(overrides))


def threshold_table() -> str:
    """The markdown table of every number in WatchConfig (docs/watch.md embeds it; a test checks)."""
    rows = ["| setting | default | meaning | source |", "|---|---|---|---|"]
    for f in dataclasses.fields(WatchConfig):
        if f.name in ("policy", "profile"):
            continue
        source = f.metadata.get("source", "").replace("|", "\\|")
        rows.append(f"| `{f.name}` | {f.default:g} | {f.metadata.get('help', '')} | {source} |")
    return "\n".join(rows)
