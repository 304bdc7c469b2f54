"""Under bf16 autocast on CPU the healthy models get the verdicts they get in fp32 (issue 12,
"Done when"): each file below is checked twice in this process, in fp32 and with
``autocast="bf16"``, every probe, seed 0, one thread; every probe's status must be the same.

The fp32 verdicts are computed here, never written down. The files are a representative subset
(MLP, LSTM, embedding bag, sigmoid autoencoder, multi-label BCE, an unscaled linear regression,
label smoothing, a model that runs its own bf16 autocast) of the full set, which
``benchmarks/autocast_verdicts.py`` runs: every reference model and every healthy zoo file marked
``"ci": true`` (22 files, no verdict differs; times in docs/mixed-precision.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("autocast_verdicts", REPO / "benchmarks" / "autocast_verdicts.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

FILES = [
    "reference_models/xor.py",
    "reference_models/mlp.py",
    "reference_models/lstm.py",
    "reference_models/zoo/healthy/polynomial_features_linear.py",
    "reference_models/zoo/healthy/label_smoothing_mlp.py",
    "reference_models/zoo/healthy/embeddingbag_text_classifier.py",
    "reference_models/zoo/healthy/multilabel_mlp_bce.py",
    "reference_models/zoo/healthy/tied_weights_autoencoder.py",
    "reference_models/zoo/healthy/bf16_autocast_training_step.py",
]
ROWS: dict[str, dict] = {}


def test_the_subset_is_drawn_from_the_full_set():
    full = set(bench.REFERENCE) | set(bench.healthy_files(ci_only=True))
    assert set(FILES) <= full, set(FILES) - full
    assert len(full) == 22, "the docs quote 22 files: re-run the benchmark and update them"


@pytest.mark.parametrize("path", FILES)
def test_bf16_autocast_gives_the_fp32_verdicts(path):
    row = bench.compare(path, "bf16")
    ROWS[path] = row
    assert "error" not in row["fp32"].values(), row["fp32"]
    assert not row["differ"], (f"{path}: verdicts differ under bf16: "
                               + "; ".join(f"{p} {row['fp32'].get(p)} -> {row['bf16'].get(p)} "
                                           f"({row['summaries'][p]})" for p in row["differ"]))


def test_the_bf16_runs_really_ran_in_bf16():
    """The comparison can fail: bf16 changes the measured numbers the summaries quote (lr-range's
    suggestions, overfit's final loss) on most files, which a run that ignored the option would not."""
    if len(ROWS) < len(FILES):
        pytest.skip("needs the verdict tests above in the same session")
    changed = [p for p, row in ROWS.items() if row["numbers_changed"]]
    assert len(changed) >= len(FILES) // 2, changed


# ---- on a GPU (benchmarks/gpu_check.sh runs `pytest -m gpu`) -----------------------------------
HAS_CUDA = __import__("torch").cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU; run benchmarks/gpu_check.sh on a GPU machine")
@pytest.mark.parametrize("mode", ["bf16", "fp16"])
@pytest.mark.parametrize("path", FILES)
def test_cuda_autocast_gives_the_cuda_fp32_verdicts(path, mode):
    import torch

    if mode == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    import nndiag

    def statuses(**kw):
        report = nndiag.check(REPO / path, device="cuda", threads=1, **kw)
        return {r.probe: r.status.value for r in report.subjects[0].results}

    fp32, mixed = statuses(), statuses(autocast=mode)
    assert mixed == fp32, {p: (fp32.get(p), mixed.get(p)) for p in set(fp32) | set(mixed)
                           if fp32.get(p) != mixed.get(p)}
