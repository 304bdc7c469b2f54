"""CI's slice of the calibration benchmark (issue 9): on the zoo's fast files (manifest
``"ci": true``), no healthy file gets a ``fail`` or a probe ``error``, and every bug is failed by
one of the probes its manifest names. The whole zoo over three seeds is
``python benchmarks/accuracy.py`` (a benchmark, not a test: it takes tens of minutes here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_manifests_name_real_files_and_known_probes():
    probes = {"params", "data", "nan", "gradients", "dead-neurons", "saturation", "loss-setup",
              "overfit", "lr-range", "updates", "batch-independence"}
    for kind in ("healthy", "bugs"):
        manifest = json.loads((REPO / "reference_models" / "zoo" / kind / "manifest.json").read_text())
        for path, entry in manifest.items():
            assert (REPO / path).is_file(), path
            if kind == "bugs":
                assert entry["probes"] and set(entry["probes"]) <= probes, path
                assert entry.get("bug") and entry.get("why"), path


def test_fast_zoo_subset_has_no_false_fail_and_no_miss(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--ci", "--seeds", "0",
         "--check", "--jobs", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "SUMMARY:" in proc.stdout
