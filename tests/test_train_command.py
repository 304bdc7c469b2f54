"""`python -m reference_models.train`: smoke runs into tmp_path (tiny --limit, one epoch)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reference_models import train
from reference_models import data as rm_data

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / "reference_models"  # its mnist/ folder is the shipped MNIST test set
needs_mnist = pytest.mark.skipif(
    not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"offline MNIST test set not found in {SHARED_DATA / 'mnist'}",
)

REQUIRED_KEYS = {"model", "dataset", "split", "epochs", "train_seconds", "seed", "test_loss", "initial_test_loss"}


def check_outputs(out: Path, name: str) -> dict:
    """Weights load strictly into a fresh model; metrics.json has the required keys."""
    module = train.load_model_file(name)
    state = torch.load(out / f"{name}.pt", weights_only=True)
    module.build_model().load_state_dict(state)
    metrics = json.loads((out / "metrics.json").read_text())
    assert REQUIRED_KEYS <= metrics.keys()
    assert metrics["model"] == name and metrics["epochs"] >= 1 and metrics["train_seconds"] >= 0
    return metrics


@needs_mnist
def test_command_line_smoke_run(tmp_path):
    """The real command in a subprocess: MLP, 1 epoch on 1024 offline MNIST images."""
    env = {k: v for k, v in os.environ.items() if k not in ("NNDIAG_DATA_DIR", "NNDIAG_DATASET")}
    cmd = [sys.executable, "-m", "reference_models.train", "mlp", "--epochs", "1", "--limit", "1024",
           "--data-dir", str(SHARED_DATA), "--out", str(tmp_path), "--seed", "3"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    metrics = check_outputs(tmp_path, "mlp")
    assert metrics["dataset"] == "mnist" and metrics["split"] == "mnist-test-8k/2k"
    assert metrics["train_samples"] == metrics["test_samples"] == 1024 and metrics["seed"] == 3
    assert metrics["test_loss"] < metrics["initial_test_loss"]
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1
    assert "test_accuracy" in result.stdout


@needs_mnist
@pytest.mark.parametrize("name", ["cnn", "seq_classifier"])
def test_image_models_smoke(name, tmp_path):
    code = train.main([name, "--epochs", "1", "--limit", "512", "--data-dir", str(SHARED_DATA),
                       "--out", str(tmp_path), "--quiet"])
    assert code == 0
    metrics = check_outputs(tmp_path, name)
    assert metrics["test_loss"] < metrics["initial_test_loss"]
    assert metrics["test_accuracy"] > 0.15  # chance is about 0.1 (8 batches of training only)


def test_xor_trains_to_perfect_accuracy(tmp_path):
    assert train.main(["xor", "--out", str(tmp_path), "--quiet"]) == 0
    metrics = check_outputs(tmp_path, "xor")
    assert metrics["test_accuracy"] == 1.0 and metrics["split"].startswith("xor")


def test_lstm_loss_goes_down(tmp_path):
    assert train.main(["lstm", "--epochs", "1", "--limit", "512", "--out", str(tmp_path), "--quiet"]) == 0
    metrics = check_outputs(tmp_path, "lstm")
    assert metrics["test_mse"] < metrics["initial_test_loss"] / 2
    assert "test_accuracy" not in metrics


def test_missing_data_exits_2_with_a_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(rm_data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    empty = tmp_path / "empty"
    code = train.main(["mlp", "--dataset", "fashion-mnist", "--data-dir", str(empty), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(empty / "fashion-mnist") in err and "apt-get install dataset-fashion-mnist" in err
    assert not (tmp_path / "o").exists()


def test_unknown_data_set_for_a_model_is_refused(tmp_path, capsys):
    assert train.main(["lstm", "--dataset", "mnist", "--out", str(tmp_path)]) == 2
    assert "lstm has no data set 'mnist'" in capsys.readouterr().err
