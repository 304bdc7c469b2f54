"""Finding and loading the image data sets used by the reference models (MNIST, Fashion-MNIST).

Where the data comes from
-------------------------
The data root is, in order: the ``data_dir`` argument, the ``NNDIAG_DATA_DIR`` environment variable,
``~/.cache/nndiag/data`` (:func:`resolve_data_root`). Inside it the IDX files (``.gz`` or raw) are
looked for in:

* MNIST: ``<root>/mnist/`` or torchvision's layout ``<root>/MNIST/raw/``, then the copy of the
  official MNIST test set shipped in this package (``reference_models/mnist/``, 1.6 MB; MNIST is by
  LeCun, Cortes and Burges, CC BY-SA 3.0; see its README), so the reference models run on a fresh
  clone or a pip install with no data folder and no network;
* Fashion-MNIST: ``<root>/fashion-mnist/`` or ``<root>/FashionMNIST/raw/``, then Debian's
  ``/usr/share/datasets/fashion-mnist/`` (``apt-get install dataset-fashion-mnist``).

Splits
------
With the training files present, the official split is used (60,000 training / 10,000 test images,
split name e.g. ``"fashion-mnist-60k/10k"``). When only the official *test* files are there (as in
the shipped copy), the 10,000 test images are split deterministically: the first 8,000 for
training, the last 2,000 for evaluation, and the split name says so (``"mnist-test-8k/2k"``).
Scores on that split are not comparable with published MNIST scores.

Nothing here downloads unless ``download=True`` is passed or ``NNDIAG_DOWNLOAD=1`` is set (what
``nndiag check --download`` does): then, when no folder holds the training files, torchvision
downloads the full set into ``<root>`` (needs a network). Nothing ever falls back to random data:
a missing data set raises :class:`DataNotFoundError`.

Normalisation
-------------
Images come back as ``float32`` tensors of shape ``(N, 1, 28, 28)``, scaled as
``(pixel / 255 - mean) / std`` with the usual per-data-set constants in :data:`NORMALIZATION`
(MNIST: mean 0.1307, std 0.3081; Fashion-MNIST: mean 0.2860, std 0.3530). Labels are ``int64``.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

__all__ = [
    "DATASETS",
    "NORMALIZATION",
    "OFFLINE_TRAIN_SIZE",
    "DataNotFoundError",
    "ImageSplit",
    "NamedTensorDataset",
    "resolve_data_root",
    "candidate_dirs",
    "read_idx",
    "load_image_split",
    "image_dataset",
    "make_loader",
]

#: The image data sets the loaders know.
DATASETS = ("mnist", "fashion-mnist")

#: Per-data-set (mean, std) of the pixel values scaled to [0, 1].
NORMALIZATION = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}

#: Offline split of the official 10,000-image test set: the first 8,000 train, the rest evaluate.
OFFLINE_TRAIN_SIZE = 8000

DEFAULT_DATA_ROOT = Path("~/.cache/nndiag/data")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: The official MNIST test set shipped with the package (package data; see its README.md).
PACKAGED_MNIST = Path(__file__).resolve().parent / "mnist"
#: ``NNDIAG_DOWNLOAD=1`` (set by ``nndiag check --download``) lets the loaders download.
DOWNLOAD_ENV = "NNDIAG_DOWNLOAD"

_SUBDIRS = {"mnist": ("mnist", "MNIST/raw"), "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw")}
_TORCHVISION_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes -> torch dtypes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {
    0x08: (torch.uint8, ">u1"),
    0x09: (torch.int8, ">i1"),
    0x0B: (torch.int16, ">i2"),
    0x0C: (torch.int32, ">i4"),
    0x0D: (torch.float32, ">f4"),
    0x0E: (torch.float64, ">f8"),
}


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where the loaders look; the message says where and how to get them."""


class NamedTensorDataset(TensorDataset):
    """A ``TensorDataset`` that knows which data set and split it holds (``name``, ``split``, ``part``)."""

    def __init__(self, *tensors: torch.Tensor, name: str, split: str, part: str):
        super().__init__(*tensors)
        self.name = name
        self.split = split
        self.part = part

    def __repr__(self) -> str:
        return f"NamedTensorDataset(name={self.name!r}, split={self.split!r}, part={self.part!r}, n={len(self)})"


@dataclass(frozen=True)
class ImageSplit:
    """Normalised train and evaluation tensors of one image data set, and where they came from."""

    name: str
    split: str
    source: Path
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def resolve_data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir`` if given, else ``$NNDIAG_DATA_DIR``, else ``~/.cache/nndiag/data``."""
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get("NNDIAG_DATA_DIR") or DEFAULT_DATA_ROOT
    return Path(data_dir).expanduser().resolve()


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for data set ``name``, in order: the data root's, then the shipped MNIST
    test set (MNIST) or Debian's folder (Fashion-MNIST)."""
    _check_name(name)
    root = resolve_data_root(data_dir)
    dirs = [root / sub for sub in _SUBDIRS[name]]
    dirs.append(PACKAGED_MNIST if name == "mnist" else DEBIAN_FASHION_MNIST)
    return dirs


def download_requested() -> bool:
    """True when ``$NNDIAG_DOWNLOAD`` asks the loaders to download (``nndiag check --download``)."""
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read one IDX file (gzip-compressed or raw) into a tensor of its stored dtype and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    torch_dtype, np_dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    import numpy as np  # numpy ships with torch's usual installs; imported lazily to keep import cheap

    data = np.frombuffer(raw, dtype=np.dtype(np_dtype), offset=4 + 4 * ndim)
    expected = 1
    for size in shape:
        expected *= size
    if data.size != expected:
        raise ValueError(f"{path}: header says shape {shape} but the file holds {data.size} values")
    return torch.from_numpy(data.astype(data.dtype.newbyteorder("="))).to(torch_dtype).reshape(shape)


def load_image_split(
    name: str = "mnist", data_dir: str | os.PathLike | None = None, download: bool = False
) -> ImageSplit:
    """Load data set ``name`` ("mnist" or "fashion-mnist"), normalised, with its train/eval split.

    Uses the official split when the training files are found, else the deterministic 8k/2k split of
    the official test set (see the module docstring). With ``download=True`` (or ``NNDIAG_DOWNLOAD=1``)
    and no training files found, torchvision downloads the full set into the data root first (needs
    a network). Results are cached per (data set, folder), so repeated calls are cheap.
    """
    _check_name(name)
    download = download or download_requested()
    found = _find_files(name, data_dir)
    if download and (found is None or not found[1]):  # nothing, or only the test files: get the full set
        try:
            _download(name, resolve_data_root(data_dir))
        except (OSError, RuntimeError) as exc:  # no network, a proxy, a read-only folder
            fallback = (" Without --download (and NNDIAG_DOWNLOAD unset) the MNIST test set shipped in "
                        f"{PACKAGED_MNIST} is used." if name == "mnist" else "")
            raise DataNotFoundError(f"Downloading {name} with torchvision into {resolve_data_root(data_dir)} "
                                    f"failed: {exc}. --download needs a network and a writable data "
                                    f"folder (--data-dir DIR).{fallback}") from exc
        found = _find_files(name, data_dir)
    if found is None:
        raise DataNotFoundError(_missing_message(name, data_dir))
    folder, has_train = found
    return _load_cached(name, str(folder), has_train)


def image_dataset(
    name: str = "mnist",
    train: bool = True,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool = False,
) -> NamedTensorDataset:
    """The training (``train=True``) or evaluation part of data set ``name`` as a dataset.

    ``limit`` keeps only the first ``limit`` samples of that part (for smoke tests).
    """
    split = load_image_split(name, data_dir, download)
    x, y = (split.train_x, split.train_y) if train else (split.test_x, split.test_y)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return NamedTensorDataset(x, y, name=split.name, split=split.split, part="train" if train else "test")


def make_loader(dataset: TensorDataset, batch_size: int = 64, shuffle: bool = True, seed: int = 0) -> DataLoader:
    """A seeded ``DataLoader`` over an in-memory ``TensorDataset`` that slices whole batches at once.

    The shuffle order depends only on ``seed`` (and on how many epochs were drawn before), so two
    loaders made with the same seed give the same batches. Batches are ``(inputs, targets)``.
    """
    if shuffle:
        generator = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    # batch_size=None + a BatchSampler: the dataset is indexed with a list of indices per batch, which
    # for a TensorDataset is one tensor slice instead of batch_size single-item lookups and a collate.
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)


# --- internals ---------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


def _idx_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.gz`` or ``folder/stem`` if either exists."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _has_part(folder: Path, part: str) -> bool:
    return all(_idx_file(folder, stem) is not None for stem in _FILES[part])


def _find_files(name: str, data_dir) -> tuple[Path, bool] | None:
    """The first folder with the full set, else the first with the test files only, else None."""
    with_test = [d for d in candidate_dirs(name, data_dir) if _has_part(d, "test")]
    for folder in with_test:
        if _has_part(folder, "train"):
            return folder, True
    return (with_test[0], False) if with_test else None


def _read_part(folder: Path, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    images_stem, labels_stem = _FILES[part]
    images = read_idx(_idx_file(folder, images_stem))
    labels = read_idx(_idx_file(folder, labels_stem)).long()
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels ({part})")
    return images, labels


def _normalise(images: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), ``(x / 255 - mean) / std``."""
    mean, std = NORMALIZATION[name]
    return ((images.float() / 255.0 - mean) / std).unsqueeze(1).contiguous()


def _short(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, folder: str, has_train: bool) -> ImageSplit:
    source = Path(folder)
    test_x, test_y = _read_part(source, "test")
    if has_train:
        train_x, train_y = _read_part(source, "train")
        split = f"{name}-{_short(len(train_y))}/{_short(len(test_y))}"
    else:
        n = OFFLINE_TRAIN_SIZE
        train_x, train_y, test_x, test_y = test_x[:n], test_y[:n], test_x[n:], test_y[n:]
        split = f"{name}-test-{_short(len(train_y))}/{_short(len(test_y))}"
    return ImageSplit(
        name=name,
        split=split,
        source=source,
        train_x=_normalise(train_x, name),
        train_y=train_y,
        test_x=_normalise(test_x, name),
        test_y=test_y,
    )


def _missing_message(name: str, data_dir) -> str:
    searched = ", ".join(str(d) for d in candidate_dirs(name, data_dir))
    how = ["point --data-dir (or NNDIAG_DATA_DIR) at a folder holding <folder>/" + _SUBDIRS[name][0]
           + "/t10k-images-idx3-ubyte.gz and its labels"]
    if name == "fashion-mnist":
        how.append("install the Debian package: apt-get install dataset-fashion-mnist")
    how.append("on a machine with a network, add --download (nndiag check FILE --download) to fetch it "
               "with torchvision")
    return (
        f"{name} data not found: no IDX files (t10k-images-idx3-ubyte[.gz] and labels) in {searched}. "
        "To get it: " + "; or ".join(how) + "."
    )


def _download(name: str, root: Path) -> None:
    """Download the full data set with torchvision into ``root`` (its ``<Class>/raw`` layout)."""
    import torchvision.datasets  # only needed here; keeps importing this module cheap

    cls = getattr(torchvision.datasets, _TORCHVISION_CLASS[name])
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        cls(str(root), train=train, download=True)
