"""MNIST and Fashion-MNIST from their original gzip IDX files, as tensors ready for training.

Files are found, in this order:

1. in ``$BNGUIDE_DATA/<name>/`` when ``BNGUIDE_DATA`` is set (a folder laid out like
   ``mnist/``, ``fashion-mnist/``; CI and the tests use this, so they need no network);
2. otherwise downloaded once with :mod:`pooch` from the canonical locations into
   ``<cache root>/data/<name>/`` (see :func:`bnguide.paths.cache_root`).

Every file is checked against the SHA-256 registry below before it is parsed. A download whose
hash does not match is discarded and the next mirror is tried. Downloads go to a temporary folder
named after the downloading process (``.tmp-<pid>-download``) and are moved into place once
verified; such folders left by killed downloads are removed by the next download.

Used in :doc:`/book/data`, and by every chapter that trains on MNIST or Fashion-MNIST.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pooch
import torch

from bnguide.paths import cache_root, remove_stale_temporaries

__all__ = [
    "DATASETS",
    "DataUnavailableError",
    "CorruptFileError",
    "Data",
    "Dataset",
    "class_names",
    "fetch",
    "load",
    "load_arrays",
    "load_data",
    "load_downsampled",
    "parse_idx",
]

SPLITS = ("train", "test")
_FILE_STEMS = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class Dataset:
    """A dataset bnguide knows how to fetch: where it lives and what its files hash to."""

    name: str
    urls: tuple[str, ...]  # base URLs, tried in order
    sha256: dict[str, str]  # file name -> SHA-256 of the gzip file
    classes: tuple[str, ...]


DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        name="mnist",
        urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": (
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
            ),
            "train-labels-idx1-ubyte.gz": (
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
            ),
            "t10k-images-idx3-ubyte.gz": (
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
            ),
        },
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": Dataset(
        name="fashion-mnist",
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte.gz": (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
            ),
            "train-labels-idx1-ubyte.gz": (
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
            ),
            "t10k-images-idx3-ubyte.gz": (
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
            ),
        },
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


class DataUnavailableError(RuntimeError):
    """Raised when a dataset file is neither available locally nor downloadable."""


class CorruptFileError(ValueError):
    """Raised when a file's hash does not match the registry or it is not a valid IDX file."""


def _dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(repr(k) for k in DATASETS)
        raise ValueError(f"Unknown dataset {name!r}. Known datasets: {known}.") from None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Use one of: {', '.join(map(repr, SPLITS))}.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_file(dataset: Dataset, filename: str, root: Path) -> Path:
    path = root / dataset.name / filename
    if not path.is_file():
        raise DataUnavailableError(
            f"BNGUIDE_DATA is set to {str(root)!r}, but {str(path)!r} does not exist. "
            f"Point BNGUIDE_DATA at a folder that holds '{dataset.name}/{filename}' "
            "(laid out like mnist/, fashion-mnist/), or unset it to download the data."
        )
    actual = _sha256(path)
    if actual != dataset.sha256[filename]:
        raise CorruptFileError(
            f"{str(path)!r} has SHA-256 {actual}, expected {dataset.sha256[filename]}: "
            "it is not the original file (corrupt, truncated or replaced). "
            "Replace it with the original download."
        )
    return path


def _download(dataset: Dataset, filename: str, cache_dir: Path, urls: tuple[str, ...]) -> Path:
    expected = dataset.sha256[filename]
    final = cache_dir / filename
    if final.is_file() and _sha256(final) == expected:
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(cache_dir)  # what killed downloads left behind
    staging = cache_dir / f".tmp-{os.getpid()}-download"
    errors, mismatches = [], []
    try:
        for base in urls:
            try:
                # pooch streams to a temporary file in `staging` and keeps it only if the hash
                # matches; the verified file is then moved into place in one rename.
                fname = pooch.retrieve(
                    url=base + filename,
                    known_hash=f"sha256:{expected}",
                    fname=filename,
                    path=staging,
                    progressbar=False,
                )
                os.replace(fname, final)
                return final
            except ValueError as exc:  # pooch: hash mismatch; try the next mirror
                mismatches.append(f"{base + filename}: {exc}")
            except Exception as exc:  # network errors of every kind
                errors.append(f"{base + filename}: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            cache_dir.rmdir()  # only when empty: a failed first download leaves nothing
    if mismatches:
        raise CorruptFileError(
            f"The download of {filename!r} does not match the registered SHA-256 on any mirror "
            "and was discarded:\n" + "\n".join(f"  - {e}" for e in mismatches + errors)
        )
    raise DataUnavailableError(
        f"Could not download {dataset.name}/{filename} and no local copy is configured.\n"
        + "\n".join(f"  - {e}" for e in errors)
        + "\nWithout network access, set BNGUIDE_DATA to a folder that holds "
        f"'{dataset.name}/{filename}' (for example the shared/data folder of the bnguide repo)."
    )


def fetch(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    urls: tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """Locate (or download) and verify the four IDX files of a dataset.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        The dataset.
    data_dir : path-like, optional
        A local folder laid out like ``mnist/``, ``fashion-mnist/``. Defaults to
        ``$BNGUIDE_DATA``; when neither is set the files are downloaded.
    cache_dir : path-like, optional
        Where downloads are kept. Defaults to ``<cache root>/data/<name>``.
    urls : tuple of str, optional
        Base URLs to download from, tried in order. Defaults to the canonical locations.

    Returns
    -------
    dict
        File name -> path of the verified gzip file.

    Raises
    ------
    ValueError
        For an unknown dataset name (the message lists the known ones).
    DataUnavailableError
        When the files are neither local nor downloadable (the message names ``BNGUIDE_DATA``).
    CorruptFileError
        When a file's SHA-256 does not match the registry.
    """
    dataset = _dataset(name)
    if data_dir is None:
        data_dir = os.environ.get("BNGUIDE_DATA", "").strip() or None
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return {f: _local_file(dataset, f, root) for f in dataset.sha256}
    target = Path(cache_dir) if cache_dir else cache_root() / "data" / dataset.name
    return {f: _download(dataset, f, target, urls or dataset.urls) for f in dataset.sha256}


def parse_idx(path: str | os.PathLike, *, expected_magic: int | None = None) -> np.ndarray:
    """Parse a gzip-compressed IDX file of unsigned bytes into a NumPy array.

    Parameters
    ----------
    path : path-like
        The ``.gz`` file.
    expected_magic : int, optional
        2051 for image files, 2049 for label files; checked when given.

    Returns
    -------
    numpy.ndarray of uint8
        Shape ``(N, 28, 28)`` for images, ``(N,)`` for labels.

    Raises
    ------
    CorruptFileError
        If the file is not gzip, is truncated, or is not an IDX file of unsigned bytes.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise CorruptFileError(
            f"{str(path)!r} is not a complete gzip file ({exc}). Delete it and fetch it again."
        ) from exc
    if len(raw) < 8:
        raise CorruptFileError(f"{str(path)!r} is too short to be an IDX file.")
    magic = int.from_bytes(raw[:4], "big")
    dtype_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise CorruptFileError(
            f"{str(path)!r} is not an IDX file of unsigned bytes (magic number {magic:#010x})."
        )
    if expected_magic is not None and magic != expected_magic:
        raise CorruptFileError(
            f"{str(path)!r} has IDX magic number {magic}, expected {expected_magic}."
        )
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise CorruptFileError(
            f"{str(path)!r} declares shape {dims} ({expected} bytes of data) but holds "
            f"{len(raw) - header}: the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@functools.lru_cache(maxsize=8)
def _cached_arrays(name: str, split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    files = fetch(name, data_dir=data_dir)
    images = parse_idx(files[_FILE_STEMS[(split, "images")]], expected_magic=2051)
    labels = parse_idx(files[_FILE_STEMS[(split, "labels")]], expected_magic=2049)
    if len(images) != len(labels):
        raise CorruptFileError(f"{name} {split}: {len(images)} images but {len(labels)} labels.")
    return images, labels


def load_arrays(name: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Return the raw uint8 images ``(N, 28, 28)`` and labels ``(N,)`` of a split.

    Parsed arrays are memoised per process (read-only views of the file contents).

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    split : str, optional
        ``"train"`` or ``"test"``.

    Returns
    -------
    images : numpy.ndarray
        ``(N, 28, 28)`` uint8.
    labels : numpy.ndarray
        ``(N,)`` uint8.
    """
    _dataset(name)
    _check_split(split)
    data_dir = os.environ.get("BNGUIDE_DATA", "").strip() or None
    return _cached_arrays(name, split, data_dir)


def load(
    name: str = "mnist",
    split: str = "train",
    *,
    flatten: bool = False,
    standardize: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split as tensors ready for training.

    The chapter :doc:`/book/data` shows what it returns.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        The dataset.
    split : {"train", "test"}
        60,000 training or 10,000 test examples.
    flatten : bool
        Return images as ``(N, 784)`` instead of ``(N, 1, 28, 28)``.
    standardize : bool
        Subtract the training set's pixel mean and divide by its pixel standard deviation
        (one scalar each, computed from the training split). Otherwise pixels are in [0, 1].
    device, dtype
        Where and in which floating-point type the images are returned.
    limit : int, optional
        Keep only the first ``limit`` examples.

    Returns
    -------
    images : torch.Tensor
        ``(N, 1, 28, 28)`` or ``(N, 784)``, floating point.
    labels : torch.Tensor
        ``(N,)``, int64 class indices.

    Examples
    --------
    >>> x, y = load("mnist", "test", flatten=True)  # doctest: +SKIP
    >>> x.shape, y.dtype  # doctest: +SKIP
    (torch.Size([10000, 784]), torch.int64)
    """
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype}.")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of examples, got {limit}.")
    images, labels = load_arrays(name, split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)  # (N, 28, 28)
    if standardize:
        train_images, _ = load_arrays(name, "train")
        mean = float(train_images.mean()) / 255.0
        std = float(train_images.std()) / 255.0
        x = (x - mean) / std
    x = x.reshape(len(x), -1) if flatten else x.unsqueeze(1)  # (N, 784) or (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))  # (N,)
    return x.to(device=device, dtype=dtype), y.to(device=device)


@dataclass(frozen=True)
class Data:
    """Flattened train and test tensors, all on one device.

    Shape
    -----
    ``x_train (N, D)``, ``y_train (N,)``, ``x_test (N_test, D)``, ``y_test (N_test,)``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.x_train.device


def load_data(
    name: str = "mnist",
    *,
    standardize: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    device: str | torch.device = "cpu",
) -> Data:
    """Both splits of MNIST or Fashion-MNIST, flattened to 784 features, as a :class:`Data`.

    What the MLP experiments train on: :func:`bnguide.training.train_variants` (pixels in
    [0, 1]) and the Santurkar et al. replications (standardized, first images only).

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    standardize : bool
        As for :func:`bnguide.data.load`: both splits with the training set's pixel mean and std.
    n_train, n_test : int, optional
        Keep only the first training / test images (None: all 60,000 / 10,000).
    device : str or torch.device
        Where the tensors go.

    Returns
    -------
    Data
        ``(N, 784)`` float32 images, int64 labels.
    """
    kw = dict(flatten=True, standardize=standardize, device=device)
    x_train, y_train = load(name, "train", limit=n_train, **kw)
    x_test, y_test = load(name, "test", limit=n_test, **kw)
    return Data(x_train, y_train, x_test, y_test)


def class_names(name: str) -> tuple[str, ...]:
    """The human-readable class names of a dataset, indexed by label.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.

    Returns
    -------
    tuple of str
        Ten names; entry ``i`` names label ``i``.
    """
    return _dataset(name).classes


def load_downsampled(
    name: str, split: str, *, side: int = 14, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized images average-pooled from 28x28 down to ``side`` x ``side``.

    The smaller images let the *BN at scale* experiments run hundreds of trainings on a CPU.

    Parameters
    ----------
    name, split : str
        As for :func:`bnguide.data.load`.
    side : int
        Output side; must divide 28.
    limit : int, optional
        Keep only the first ``limit`` examples.

    Returns
    -------
    images, labels : torch.Tensor
        ``(N, 1, side, side)`` float32 (standardized before pooling) and ``(N,)`` int64.
    """
    if side < 1 or 28 % side:
        raise ValueError(f"side must divide 28, got {side}.")
    x, y = load(name, split, standardize=True, limit=limit)  # (N, 1, 28, 28)
    return torch.nn.functional.avg_pool2d(x, 28 // side), y  # (N, 1, side, side)
