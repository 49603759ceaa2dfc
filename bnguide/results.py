"""Experiment results as data: NumPy arrays plus JSON in one checksummed file, never a pickle.

:func:`save` writes a Result (a dataclass of arrays, numbers, strings, tuples, lists, dicts,
tensors and nested dataclasses) to one ``.npz`` file: every array is an ``.npy`` member, and a
member ``result.json`` holds everything else, with a format name, a version, the experiment's
name and a SHA-256 over the JSON and every array's bytes. :func:`load` reads arrays with
``allow_pickle=False``, checks the checksum and rebuilds the dataclasses, which must be defined
in the bnguide package: opening a result file never runs code from the file. A file that is not
a result, was written by an unknown format version, was truncated or changed at any byte raises
:class:`ResultFileError` with a message saying which file and why.

The experiment cache (:mod:`bnguide.cache`) and ``python -m bnguide run --out`` /
``plot`` both use this format. Results round-trip exactly: arrays bit for bit with their
dtypes, floats (NaN and infinities included), ints, strings, tuples versus lists, dict keys of
any of these types, numpy scalars and CPU tensors. Used by :mod:`bnguide.cache` and
:mod:`bnguide.cli` (see *Run it yourself* in :doc:`/book/intro`).

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from bnguide.experiments import ghost_batch
>>> r = ghost_batch.Result(ghost_batch.Config(), ["a"], *[np.zeros(2)] * 6)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "r.npz"
>>> save(path, r, experiment="ghost-batch")
>>> load(path).config == r.config
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "ResultFileError", "decode", "encode", "load", "read", "save"]

FORMAT = "bnguide-result"
VERSION = 1
_META = "result.json"
_FILE_HASH = b"bnguide-result sha256:"
_END_RECORD = 22  # bytes of a zip's end-of-central-directory record without its comment


class ResultFileError(ValueError):
    """A file that is not a readable bnguide result (unknown, truncated, corrupted or edited)."""


# -- the tree: JSON values, with tagged objects for what JSON lacks -----------------------------


def encode(obj: Any, arrays: list[np.ndarray], where: str = "result") -> Any:
    """A JSON-ready tree for ``obj``; its arrays are appended to ``arrays`` and referenced.

    Parameters
    ----------
    obj : object
        A Result, or any value it holds.
    arrays : list of numpy.ndarray
        Receives the arrays, in the order the tree references them.
    where : str
        The path of ``obj`` inside the Result, for error messages.

    Returns
    -------
    object
        ``None``, a bool, int, float, str, list or dict that ``json.dumps`` accepts.

    Raises
    ------
    TypeError
        For a value of a type a result cannot hold (the message names where it is).
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int) and type(obj) is int:
        return obj
    if type(obj) is float:
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.ndarray | np.generic):
        array = np.asarray(obj)
        if array.dtype.hasobject:
            raise TypeError(f"{where}: a numpy array of Python objects cannot be stored.")
        arrays.append(np.asarray(array, order="C"))
        tag = "__array__" if isinstance(obj, np.ndarray) else "__scalar__"
        return {tag: len(arrays) - 1}
    if type(obj).__module__ == "torch" and type(obj).__name__ in ("Tensor", "Parameter"):
        arrays.append(np.asarray(obj.detach().cpu().numpy(), order="C"))
        return {"__tensor__": len(arrays) - 1}
    if isinstance(obj, tuple) and type(obj) is tuple:
        return {"__tuple__": [encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if type(obj) is list:
        return [encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if type(obj) is dict:
        if all(type(k) is str for k in obj):
            return {"__dict__": {k: encode(v, arrays, f"{where}[{k!r}]") for k, v in obj.items()}}
        return {
            "__items__": [
                [encode(k, arrays, f"{where} key"), encode(v, arrays, f"{where}[{k!r}]")]
                for k, v in obj.items()
            ]
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        if not cls.__module__.startswith("bnguide."):
            raise TypeError(
                f"{where}: {cls.__qualname__} is defined outside the bnguide package "
                f"({cls.__module__}); a result may only hold bnguide dataclasses."
            )
        fields = {
            f.name: encode(getattr(obj, f.name), arrays, f"{where}.{f.name}")
            for f in dataclasses.fields(obj)
        }
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise TypeError(
        f"{where}: a result cannot hold a {type(obj).__module__}.{type(obj).__qualname__} "
        "(use numpy arrays, numbers, strings, tuples, lists, dicts and dataclasses)."
    )


def _class(name: str) -> type:
    module_name, _, qualname = name.partition(":")
    if not (module_name.startswith("bnguide.") and qualname):
        raise ResultFileError(f"names a class outside the bnguide package ({name!r})")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ResultFileError(
            f"needs {name!r}, which this version of bnguide does not have"
        ) from None
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise ResultFileError(f"names {name!r}, which is not a dataclass")
    return obj


def decode(tree: Any, arrays: list[np.ndarray]) -> Any:
    """Rebuild the value that :func:`encode` turned into ``tree``.

    Parameters
    ----------
    tree : object
        What :func:`encode` returned (after a JSON round trip).
    arrays : list of numpy.ndarray
        The arrays it collected, in order.

    Returns
    -------
    object
        The original value: Results, dataclasses, arrays, tuples and the rest.

    Raises
    ------
    ResultFileError
        For a tree :func:`encode` cannot have written.
    """
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    if isinstance(tree, list):
        return [decode(v, arrays) for v in tree]
    if not isinstance(tree, dict) or len(tree) not in (1, 2):
        raise ResultFileError(f"holds an unknown entry {str(tree)[:60]!r}")
    (tag, value), *rest = tree.items()
    if tag == "__float__" and value in ("nan", "inf", "-inf"):
        return float(value)
    if tag in ("__array__", "__scalar__", "__tensor__"):
        if not isinstance(value, int) or not 0 <= value < len(arrays):
            raise ResultFileError(f"refers to a missing array {value!r}")
        array = arrays[value]
        if tag == "__scalar__":
            return array[()]
        if tag == "__tensor__":
            import torch

            return torch.from_numpy(array.copy())
        return array
    if tag == "__tuple__" and isinstance(value, list):
        return tuple(decode(v, arrays) for v in value)
    if tag == "__dict__" and isinstance(value, dict):
        return {k: decode(v, arrays) for k, v in value.items()}
    if tag == "__items__" and isinstance(value, list):
        return {_hashable(decode(k, arrays)): decode(v, arrays) for k, v in value}
    if tag == "__dataclass__" and isinstance(value, str) and rest and rest[0][0] == "fields":
        cls, stored = _class(value), rest[0][1]
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(stored, dict) or sorted(stored) != sorted(names):
            raise ResultFileError(
                f"holds a {cls.__qualname__} with fields {sorted(stored)}, but this version of "
                f"bnguide's has {sorted(names)}"
            )
        obj = cls.__new__(cls)  # as pickle does: fields set as stored, no __init__ checks
        for name in names:
            object.__setattr__(obj, name, decode(stored[name], arrays))
        return obj
    raise ResultFileError(f"holds an unknown entry {str(tree)[:60]!r}")


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        raise ResultFileError(f"holds a dict key that cannot be one ({key!r})") from None
    return key


def _checksum(meta: dict, arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    body = {k: v for k, v in meta.items() if k != "sha256"}
    digest.update(json.dumps(body, sort_keys=True).encode())
    for array in arrays:
        digest.update(f"|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# -- the file --------------------------------------------------------------------------------


def save(
    path: str | Path, result: Any, *, experiment: str | None = None, cache_key: str | None = None
) -> None:
    """Write ``result`` to ``path`` (an ``.npz`` file); the caller makes it atomic if needed.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write.
    result : dataclass instance
        An experiment's Result (or any value :func:`encode` accepts).
    experiment : str, optional
        The experiment's name, recorded so that a reader can check what it holds.
    cache_key : str, optional
        The experiment's :func:`bnguide.cache.cache_key` for this config and code, recorded
        when given, in the file's JSON metadata (``"cache_key"``).

    Raises
    ------
    TypeError
        If ``result`` holds a value that cannot be stored (nothing is written then).
    OSError
        If the file cannot be written.
    """
    arrays: list[np.ndarray] = []
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "experiment": experiment,
        "tree": encode(result, arrays),
    }
    if cache_key is not None:
        meta["cache_key"] = cache_key
    meta["sha256"] = _checksum(meta, arrays)
    _write_archive(path, meta, arrays)


def _write_archive(path: str | Path, meta: dict, arrays: list[np.ndarray]) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_zip_info(_META), json.dumps(meta, indent=1, allow_nan=False))
        for i, array in enumerate(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            zf.writestr(_zip_info(f"a{i}.npy"), buffer.getvalue())
    raw = archive.getvalue()
    # The zip comment (the file's last bytes) holds the SHA-256 of every byte before it, so
    # that a change anywhere, the archive's own records included, is detected.
    body = raw[:-2] + (len(_FILE_HASH) + 64).to_bytes(2, "little")  # the comment's length
    comment = _FILE_HASH + hashlib.sha256(body).hexdigest().encode()
    with open(path, "wb") as f:
        f.write(body + comment)


def _zip_info(name: str) -> zipfile.ZipInfo:
    return zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # the same bytes every time


def read_meta(path: str | Path) -> tuple[dict, list[np.ndarray]]:
    """The verified JSON document and arrays of a result file (nothing decoded yet).

    Raises
    ------
    ResultFileError
        If the file is not a bnguide result, has an unknown version, or fails its checksum.
    OSError
        If it cannot be read at all.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    where = f"{str(path)!r}"
    length = len(_FILE_HASH) + 64
    tail = raw[-length:]
    if tail.startswith(_FILE_HASH) and len(raw) >= length + _END_RECORD:
        body = raw[: len(raw) - length]
        if hashlib.sha256(body).hexdigest().encode() != tail[len(_FILE_HASH) :]:
            raise ResultFileError(
                f"{where} fails its SHA-256 checksum: it was changed after it was written "
                "(corrupted or edited); rerun the experiment to write it again."
            )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            if not zf.comment.startswith(_FILE_HASH):
                raise ResultFileError("no checksum")
            meta = json.loads(zf.read(_META).decode())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ResultFileError("no bnguide-result header")
            if meta.get("version") != VERSION:
                raise ResultFileError(
                    f"format version {meta.get('version')!r}; this bnguide reads version "
                    f"{VERSION}: rerun the experiment with this version"
                )
            names = sorted(n for n in zf.namelist() if n != _META)
            if names != sorted(f"a{i}.npy" for i in range(len(names))):
                raise ResultFileError("unexpected members in the archive")
            arrays = []
            for i in range(len(names)):  # read whole (CRC-checked) before parsing
                member = io.BytesIO(zf.read(f"a{i}.npy"))
                arrays.append(np.lib.format.read_array(member, allow_pickle=False))
    except ResultFileError as exc:
        raise ResultFileError(f"{where} is not a readable bnguide result: {exc}.") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes
        kind = "is not a bnguide result file" if not raw.startswith(b"PK") else "is damaged"
        raise ResultFileError(
            f"{where} {kind} ({type(exc).__name__}: {str(exc)[:80]}); "
            "rerun the experiment to write it again."
        ) from None
    if meta.get("sha256") != _checksum(meta, arrays):
        raise ResultFileError(
            f"{where} fails its SHA-256 checksum: it was changed after it was written "
            "(corrupted or edited); rerun the experiment to write it again."
        )
    return meta, arrays


def read(path: str | Path) -> tuple[str | None, Any]:
    """The experiment name recorded in a result file, and the Result it holds.

    Parameters
    ----------
    path : str or pathlib.Path
        A file written by :func:`save`.

    Returns
    -------
    tuple
        ``(experiment name or None, Result)``.

    Raises
    ------
    ResultFileError
        If the file is not an intact bnguide result.
    """
    meta, arrays = read_meta(path)
    try:
        return meta.get("experiment"), decode(meta["tree"], arrays)
    except ResultFileError as exc:
        raise ResultFileError(f"{str(path)!r} cannot be read: it {exc}.") from None


def load(path: str | Path, *, experiment: str | None = None) -> Any:
    """Read a result written by :func:`save`.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.npz`` file.
    experiment : str, optional
        When given, the file must have been written for this experiment.

    Returns
    -------
    The Result, with the same types and values as the one saved.

    Raises
    ------
    ResultFileError
        If the file is not an intact bnguide result (of ``experiment``, when given).
    """
    name, result = read(path)
    if experiment is not None and name != experiment:
        raise ResultFileError(f"{str(path)!r} holds a result of {name!r}, not of {experiment!r}.")
    return result
