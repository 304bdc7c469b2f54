"""The reference models and their data loaders (reference_models/)."""

import gzip
import importlib
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reference_models import data as rm_data

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / "reference_models"  # the shipped MNIST test set is in its mnist/ folder
MNIST_DIR = SHARED_DATA / "mnist"
WEIGHTS = REPO / "reference_models" / "weights"

needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"offline MNIST test set not found in {MNIST_DIR}",
)
needs_fashion = pytest.mark.skipif(
    not (rm_data.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)

IMAGE_MODELS = ("mlp", "cnn", "seq_classifier")
ALL_MODELS = ("xor", "mlp", "cnn", "lstm", "seq_classifier")


def load(name):
    return importlib.import_module(f"reference_models.{name}")


@pytest.fixture
def shared_data_env(monkeypatch):
    """NNDIAG_DATA_DIR pointing at ../shared/data, default data set."""
    monkeypatch.setenv("NNDIAG_DATA_DIR", str(SHARED_DATA))
    monkeypatch.delenv("NNDIAG_DATASET", raising=False)


def write_idx(path, tensor):
    """Write a uint8 tensor as a gzip IDX file (test helper)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, tensor.dim()) + struct.pack(f">{tensor.dim()}I", *tensor.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + tensor.to(torch.uint8).numpy().tobytes())


# --- data root and loaders ---------------------------------------------------------------------


def test_resolve_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NNDIAG_DATA_DIR", raising=False)
    assert rm_data.resolve_data_root() == tmp_path / "home" / ".cache" / "nndiag" / "data"
    monkeypatch.setenv("NNDIAG_DATA_DIR", str(tmp_path / "env"))
    assert rm_data.resolve_data_root() == tmp_path / "env"
    assert rm_data.resolve_data_root(tmp_path / "arg") == tmp_path / "arg"


def test_read_idx_gz_and_raw_agree(tmp_path):
    images = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", images)
    (tmp_path / "x").write_bytes(gzip.decompress((tmp_path / "x.gz").read_bytes()))
    assert torch.equal(rm_data.read_idx(tmp_path / "x.gz"), images)
    assert torch.equal(rm_data.read_idx(tmp_path / "x"), images)


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="IDX"):
        rm_data.read_idx(tmp_path / "bad")


def test_full_files_give_the_official_split(tmp_path):
    write_fake_set(tmp_path / "mnist")
    split = rm_data.load_image_split("mnist", tmp_path)
    assert split.split == "mnist-100/20"
    assert (len(split.train_y), len(split.test_y)) == (100, 20)
    assert split.train_x.shape == (100, 1, 28, 28) and split.train_x.dtype == torch.float32
    assert split.train_y.dtype == torch.int64


def write_fake_set(folder, n_train=100, n_test=20):
    """Tiny IDX files in the official names (test helper for the split logic; not used as data)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", torch.randint(0, 256, (n, 28, 28), generator=g))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", torch.arange(n) % 10)


def test_download_only_when_asked_and_needed(tmp_path, monkeypatch):
    calls = []

    def fake_download(name, root):
        calls.append((name, root))
        write_fake_set(root / "MNIST" / "raw", n_train=60, n_test=30)

    monkeypatch.setattr(rm_data, "_download", fake_download)
    monkeypatch.setattr(rm_data, "PACKAGED_MNIST", tmp_path / "no-shipped-sample")
    with pytest.raises(rm_data.DataNotFoundError):
        rm_data.load_image_split("mnist", tmp_path)  # download=False never downloads
    assert calls == []
    split = rm_data.load_image_split("mnist", tmp_path, download=True)
    assert calls == [("mnist", tmp_path)] and split.split == "mnist-60/30"
    rm_data.load_image_split("mnist", tmp_path, download=True)  # already there: no second download
    assert len(calls) == 1


@needs_mnist
def test_offline_mnist_split_is_deterministic_and_disjoint():
    split = rm_data.load_image_split("mnist", SHARED_DATA)
    assert split.split == "mnist-test-8k/2k"
    assert (len(split.train_y), len(split.test_y)) == (8000, 2000)
    raw = rm_data.read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    labels = rm_data.read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz").long()
    mean, std = rm_data.NORMALIZATION["mnist"]
    expected = (raw.float() / 255 - mean) / std
    # train = test-set images 0..7999, evaluation = 8000..9999: disjoint by construction
    assert torch.allclose(split.train_x[:, 0], expected[:8000])
    assert torch.allclose(split.test_x[:, 0], expected[8000:])
    assert torch.equal(split.train_y, labels[:8000]) and torch.equal(split.test_y, labels[8000:])
    assert abs(split.train_x.mean().item()) < 0.05 and abs(split.train_x.std().item() - 1) < 0.05


@needs_mnist
def test_torchvision_layout_is_found(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST_DIR.glob("t10k-*"):
        (raw / f.name).symlink_to(f)
    split = rm_data.load_image_split("mnist", tmp_path)
    assert split.source == raw and split.split == "mnist-test-8k/2k"


def test_missing_mnist_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(rm_data, "PACKAGED_MNIST", tmp_path / "no-shipped-sample")
    with pytest.raises(rm_data.DataNotFoundError) as info:
        rm_data.load_image_split("mnist", tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "mnist") in message and "NNDIAG_DATA_DIR" in message and "--download" in message


def test_the_shipped_sample_is_the_official_test_set_and_the_fallback(tmp_path, monkeypatch):
    """No data root, no variable: MNIST comes from the copy shipped in reference_models/mnist/."""
    import hashlib

    md5 = {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
           "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    for name, digest in md5.items():  # torchvision's md5 sums for the official test files
        assert hashlib.md5((rm_data.PACKAGED_MNIST / name).read_bytes()).hexdigest() == digest
    monkeypatch.delenv("NNDIAG_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    split = rm_data.load_image_split("mnist")
    assert split.source == rm_data.PACKAGED_MNIST and split.split == "mnist-test-8k/2k"
    assert rm_data.candidate_dirs("mnist")[-1] == rm_data.PACKAGED_MNIST


def test_nndiag_download_variable_asks_for_the_full_set(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(rm_data, "_download", lambda name, root: calls.append((name, root))
                        or write_fake_set(root / "MNIST" / "raw", n_train=50, n_test=10))
    monkeypatch.setenv("NNDIAG_DOWNLOAD", "1")
    split = rm_data.load_image_split("mnist", tmp_path)  # only the shipped test set: download
    assert calls == [("mnist", tmp_path)] and split.split == "mnist-50/10"


def test_a_failed_download_says_why_and_what_works_offline(tmp_path, monkeypatch):
    def no_network(name, root):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: Name or service not known")

    monkeypatch.setattr(rm_data, "_download", no_network)
    with pytest.raises(rm_data.DataNotFoundError) as info:
        rm_data.load_image_split("mnist", tmp_path, download=True)
    message = str(info.value)
    assert "Name or service not known" in message and "needs a network" in message
    assert str(rm_data.PACKAGED_MNIST) in message  # what works without one


def test_missing_fashion_mnist_mentions_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(rm_data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    with pytest.raises(rm_data.DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        rm_data.load_image_split("fashion-mnist", tmp_path)


def test_unknown_data_set_is_refused():
    with pytest.raises(ValueError, match="unknown data set"):
        rm_data.load_image_split("cifar10")


@needs_fashion
def test_fashion_mnist_comes_from_the_debian_package(tmp_path):
    ds = rm_data.image_dataset("fashion-mnist", train=False, data_dir=tmp_path)
    assert ds.split == "fashion-mnist-60k/10k" and len(ds) == 10000
    x, y = ds[:5]
    assert x.shape == (5, 1, 28, 28) and y.dtype == torch.int64


# --- model files --------------------------------------------------------------------------------

EXPECTED = {  # input shape, target shape, target dtype, output shape for a batch of 4
    "xor": ((4, 2), (4, 1), torch.float32, (4, 1)),
    "mlp": ((4, 1, 28, 28), (4,), torch.int64, (4, 10)),
    "cnn": ((4, 1, 28, 28), (4,), torch.int64, (4, 10)),
    "lstm": ((4, 30, 1), (4, 1), torch.float32, (4, 1)),
    "seq_classifier": ((4, 1, 28, 28), (4,), torch.int64, (4, 10)),
}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_file_has_the_contract_names(name):
    module = load(name)
    model = module.build_model()
    assert isinstance(model, torch.nn.Module)
    assert callable(module.loss_fn) and callable(module.dataloader)
    optimizer = module.build_optimizer(model.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    assert module.build_model() is not model


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_shape(name):
    in_shape, _, _, out_shape = EXPECTED[name]
    assert load(name).build_model()(torch.zeros(in_shape)).shape == out_shape


@pytest.mark.parametrize("name", ALL_MODELS)
def test_batches_shapes_and_loss(name, shared_data_env):
    if name in IMAGE_MODELS and not MNIST_DIR.is_dir():
        pytest.skip(f"offline MNIST not found in {MNIST_DIR}")
    module = load(name)
    in_shape, target_shape, target_dtype, _ = EXPECTED[name]
    loader = module.dataloader()
    inputs, targets = next(iter(loader))
    assert inputs.dtype == torch.float32 and inputs.shape[1:] == in_shape[1:]
    assert targets.dtype == target_dtype and targets.shape[1:] == target_shape[1:]
    assert len(inputs) == len(targets) == module.BATCH_SIZE
    assert sum(len(t) for _, t in loader) >= 256  # enough samples for probes that want many
    torch.manual_seed(0)
    loss = module.loss_fn(module.build_model()(inputs), targets)
    assert loss.dim() == 0 and math.isfinite(loss.item())


@pytest.mark.parametrize("name", ["lstm", pytest.param("mlp", marks=needs_mnist)])
def test_dataloader_is_seeded(name, shared_data_env):
    module = load(name)
    first = [next(iter(module.dataloader(seed=s)))[1] for s in (0, 0, 1)]
    assert torch.equal(first[0], first[1])
    assert not torch.equal(first[0], first[2])


def test_sine_train_and_test_windows_differ():
    lstm = load("lstm")
    train = lstm.dataloader(train=True).dataset.tensors[0]
    test = lstm.dataloader(train=False).dataset.tensors[0]
    assert train.shape == (2048, 30, 1) and test.shape == (512, 30, 1)
    same = (test[:, None, :, 0] == train[None, :, :, 0]).all(dim=-1)
    assert not same.any()  # no held-out window is also a training window
    assert torch.equal(test, load("lstm").dataloader(train=False).dataset.tensors[0])  # deterministic


@needs_mnist
def test_data_set_selected_by_env(monkeypatch):
    monkeypatch.setenv("NNDIAG_DATASET", "fashion-mnist")
    monkeypatch.setattr(rm_data, "DEBIAN_FASHION_MNIST", Path("/nonexistent"))
    with pytest.raises(rm_data.DataNotFoundError, match="fashion-mnist"):
        load("mlp").dataloader(data_dir=SHARED_DATA)


@pytest.mark.parametrize("seed", range(5))
def test_xor_learns_on_every_seed(seed):
    xor = load("xor")
    torch.manual_seed(seed)
    model = xor.build_model()
    optimizer = xor.build_optimizer(model.parameters())
    inputs, targets = xor.sample_batch()
    for _ in range(1000):
        optimizer.zero_grad()
        loss = xor.loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
    assert torch.equal((model(inputs) > 0.5).float(), targets)
    assert loss.item() < 0.05


def test_model_files_load_by_path(tmp_path):
    """As nndiag loads them: by file path, the file's folder first on sys.path, from another directory."""
    folder = REPO / "reference_models"
    code = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        f"for name in {list(ALL_MODELS)!r}:\n"
        f"    spec = importlib.util.spec_from_file_location('user_' + name, {str(folder)!r} + '/' + name + '.py')\n"
        "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "    print(name, type(m.build_model()).__name__, callable(m.dataloader), callable(m.loss_fn))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert [line.split()[0] for line in lines if line] == list(ALL_MODELS)
    assert all(line.endswith("True True") for line in lines if line)


# --- committed trained weights ------------------------------------------------------------------

TARGETS = {  # weights file stem -> (metric, target)
    "mlp-fashion-mnist": ("test_accuracy", 0.88),
    "mlp-mnist": ("test_accuracy", 0.94),
    "cnn-fashion-mnist": ("test_accuracy", 0.91),
    "cnn-mnist": ("test_accuracy", 0.975),
    "lstm-sine": ("test_mse", 1e-3),
    "seq_classifier-mnist": ("test_accuracy", 0.95),
}


@pytest.mark.parametrize("stem", sorted(TARGETS))
def test_committed_weights_load_and_meet_their_target(stem):
    weights, metrics_path = WEIGHTS / f"{stem}.pt", WEIGHTS / f"{stem}.json"
    if not weights.is_file():
        pytest.skip(f"{weights} not trained yet")
    metrics = json.loads(metrics_path.read_text())
    module = load(metrics["model"])
    model = module.build_model()
    model.load_state_dict(torch.load(weights, weights_only=True))  # strict: same architecture
    key, target = TARGETS[stem]
    assert metrics[key] >= target if key == "test_accuracy" else metrics[key] <= target
    assert weights.stat().st_size < 3 * 2**20


@pytest.mark.parametrize(
    "stem", ["mlp-mnist", "cnn-mnist", "seq_classifier-mnist", pytest.param("cnn-fashion-mnist", marks=needs_fashion)]
)
def test_committed_weights_score_on_held_out_data(stem):
    """Re-check the recorded accuracy on the first 1000 held-out images (fast)."""
    weights = WEIGHTS / f"{stem}.pt"
    if not weights.is_file():
        pytest.skip(f"{weights} not trained yet")
    if stem.endswith("-mnist") and "fashion" not in stem and not MNIST_DIR.is_dir():
        pytest.skip(f"offline MNIST not found in {MNIST_DIR}")
    metrics = json.loads((WEIGHTS / f"{stem}.json").read_text())
    module = load(metrics["model"])
    model = module.build_model()
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    ds = rm_data.image_dataset(metrics["dataset"], train=False, data_dir=SHARED_DATA, limit=1000)
    assert ds.split == metrics["split"]
    x, y = ds.tensors
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy >= TARGETS[stem][1] - 0.02
