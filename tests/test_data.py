"""bnguide.data: real MNIST files, real downloads over loopback HTTP, and every bad-input case."""

import functools
import gzip
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from bnguide import data
from bnguide.data import CorruptFileError, DataUnavailableError

LOCAL = Path(os.environ["BNGUIDE_DATA"]) if os.environ.get("BNGUIDE_DATA") else None
needs_local = pytest.mark.skipif(LOCAL is None, reason="BNGUIDE_DATA is not set")
FILES = list(data.DATASETS["mnist"].sha256)


@pytest.fixture
def no_local_data(monkeypatch):
    monkeypatch.delenv("BNGUIDE_DATA", raising=False)


@pytest.fixture
def http_folder(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there once the socket is closed


@needs_local
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_returns_training_ready_tensors(name):
    x, y = data.load(name, "test")
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10_000,) and y.dtype == torch.int64
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert set(y.unique().tolist()) == set(range(10))
    flat, _ = data.load(name, "test", flatten=True, dtype=torch.float64, limit=7)
    assert flat.shape == (7, 784) and flat.dtype == torch.float64
    torch.testing.assert_close(flat, x[:7].reshape(7, -1).double())


@needs_local
def test_mnist_matches_the_published_statistics():
    images, labels = data.load_arrays("mnist", "train")
    assert images.shape == (60_000, 28, 28) and images.dtype == np.uint8
    counts = np.bincount(labels, minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert abs(images.mean() / 255 - 0.1307) < 1e-4


@needs_local
def test_standardize_uses_training_statistics():
    x, _ = data.load("mnist", "train", standardize=True)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-3
    x_test, _ = data.load("mnist", "test", standardize=True)
    assert abs(float(x_test.mean())) > 1e-4  # the test set is shifted by the train constants


@needs_local
def test_load_data_gives_both_splits_flattened_with_the_same_options():
    d = data.load_data("mnist", standardize=True, n_train=50, n_test=20)
    assert d.x_train.shape == (50, 784) and d.x_test.shape == (20, 784)
    assert d.y_train.shape == (50,) and d.y_test.dtype == torch.int64
    x, y = data.load("mnist", "test", flatten=True, standardize=True, limit=20)
    assert torch.equal(d.x_test, x) and torch.equal(d.y_test, y)
    plain = data.load_data("mnist", n_train=5, n_test=5)  # pixels in [0, 1]
    assert 0.0 <= float(plain.x_train.min()) and float(plain.x_train.max()) <= 1.0
    assert plain.device == torch.device("cpu")
    with pytest.raises(ValueError, match="limit must be a positive"):
        data.load_data("mnist", n_test=0)


def test_unknown_dataset_lists_the_known_ones():
    expected = "Unknown dataset 'cifar10'. Known datasets: 'mnist', 'fashion-mnist'"
    with pytest.raises(ValueError, match=expected):
        data.load("cifar10")
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.fetch("MNIST")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        data.load("mnist", "validation")
    with pytest.raises(ValueError, match="floating-point"):
        data.load("mnist", dtype=torch.int64)
    with pytest.raises(ValueError, match="limit must be a positive"):
        data.load("mnist", limit=0)


def test_no_network_and_no_local_copy_names_bnguide_data(no_local_data, tmp_path):
    with pytest.raises(DataUnavailableError, match="set BNGUIDE_DATA") as info:
        data.fetch("mnist", cache_dir=tmp_path / "cache", urls=(_closed_port_url(),))
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert not any((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True


def test_bnguide_data_pointing_at_an_empty_folder_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("BNGUIDE_DATA", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="BNGUIDE_DATA is set to .* does not exist"):
        data.fetch("fashion-mnist")


@needs_local
def test_download_over_http_is_verified_and_cached(no_local_data, http_folder, tmp_path):
    folder, url = http_folder
    for f in FILES:
        shutil.copy(LOCAL / "mnist" / f, folder / f)
    cache = tmp_path / "cache"
    # The first mirror is down: the second one is used.
    paths = data.fetch("mnist", cache_dir=cache, urls=(_closed_port_url(), url))
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)
    images = data.parse_idx(paths["t10k-images-idx3-ubyte.gz"], expected_magic=2051)
    assert images.shape == (10_000, 28, 28)
    for f in FILES:  # the server's copies go away: a second fetch must come from the cache
        (folder / f).unlink()
    assert data.fetch("mnist", cache_dir=cache, urls=(url,)) == paths


@needs_local
def test_download_with_wrong_hash_is_rejected_and_not_cached(no_local_data, http_folder, tmp_path):
    folder, url = http_folder
    for f in FILES:
        shutil.copy(LOCAL / "fashion-mnist" / f, folder / f)  # the wrong dataset's bytes
    cache = tmp_path / "cache"
    with pytest.raises(CorruptFileError, match="does not match the registered SHA-256"):
        data.fetch("mnist", cache_dir=cache, urls=(url,))
    assert not cache.exists() or list(cache.iterdir()) == []


@needs_local
def test_a_mirror_with_wrong_bytes_falls_back_to_the_next(no_local_data, tmp_path):
    servers = []
    try:
        for dataset in ("fashion-mnist", "mnist"):  # the first mirror serves the wrong bytes
            folder = tmp_path / dataset
            shutil.copytree(LOCAL / dataset, folder)
            servers.append(_serve(folder))
        cache = tmp_path / "cache"
        paths = data.fetch("mnist", cache_dir=cache, urls=tuple(url for _, url in servers))
        assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)  # nothing else left
        for f, path in paths.items():
            assert data._sha256(path) == data.DATASETS["mnist"].sha256[f]
    finally:
        for server, _ in servers:
            server.shutdown()
            server.server_close()


@needs_local
def test_temporary_files_of_killed_downloads_are_removed(no_local_data, http_folder, tmp_path):
    import subprocess
    import sys

    folder, url = http_folder
    for f in FILES:
        shutil.copy(LOCAL / "mnist" / f, folder / f)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    cache = tmp_path / "cache"
    stale = cache / f".tmp-{int(dead.stdout)}-download"  # what a SIGKILL mid-download leaves
    stale.mkdir(parents=True)
    (stale / "tmpabc123").write_bytes(b"\0" * 1000)
    data.fetch("mnist", cache_dir=cache, urls=(url,))
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)


def _serve(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@needs_local
def test_local_copy_with_wrong_hash_is_rejected(monkeypatch, tmp_path):
    shutil.copytree(LOCAL / "mnist", tmp_path / "mnist")
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes()[:-10])
    monkeypatch.setenv("BNGUIDE_DATA", str(tmp_path))
    expected = "t10k-labels-idx1-ubyte.gz' has SHA-256 .* expected"
    with pytest.raises(CorruptFileError, match=expected):
        data.fetch("mnist")


def test_truncated_gzip_gives_a_clear_error(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(5))[:-12])
    with pytest.raises(CorruptFileError, match="not a complete gzip file"):
        data.parse_idx(path)


def test_not_gzip_gives_a_clear_error(tmp_path):
    path = tmp_path / "page.gz"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(CorruptFileError, match="not a complete gzip file"):
        data.parse_idx(path)


def test_gzip_that_is_not_idx_gives_a_clear_error(tmp_path):
    path = tmp_path / "text.gz"
    path.write_bytes(gzip.compress(b"hello, this is not an IDX file"))
    with pytest.raises(CorruptFileError, match="not an IDX file of unsigned bytes"):
        data.parse_idx(path)


def test_idx_with_missing_data_gives_a_clear_error(tmp_path):
    path = tmp_path / "short.gz"
    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (3, 28, 28))
    path.write_bytes(gzip.compress(header + bytes(28 * 28 * 2)))
    with pytest.raises(CorruptFileError, match=r"declares shape \(3, 28, 28\).*truncated"):
        data.parse_idx(path)
    with pytest.raises(CorruptFileError, match="magic number 2051, expected 2049"):
        header_ok = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (1, 2, 2))
        path.write_bytes(gzip.compress(header_ok + bytes(4)))
        data.parse_idx(path, expected_magic=2049)


def test_parse_idx_roundtrip(tmp_path):
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in values.shape)
    path = tmp_path / "ok.gz"
    path.write_bytes(gzip.compress(header + values.tobytes()))
    np.testing.assert_array_equal(data.parse_idx(path, expected_magic=2051), values)


@pytest.mark.network
def test_canonical_download(no_local_data, tmp_path):
    try:
        socket.create_connection(("ossci-datasets.s3.amazonaws.com", 443), timeout=3).close()
    except OSError:
        pytest.skip("no network")
    paths = data.fetch("mnist", cache_dir=tmp_path)
    assert len(paths) == 4
