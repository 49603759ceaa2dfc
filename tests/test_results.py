"""bnguide.results: every experiment's Result round-trips exactly, and nothing else loads."""

import dataclasses
import math
import types
import typing

import numpy as np
import pytest
import torch

from bnguide import experiments, results

DTYPES = [np.float64, np.float32, np.int64, np.bool_, np.uint8, np.float16, np.int32]


class Maker:
    """Builds a value of any annotated type a Result uses, varied from call to call."""

    def __init__(self):
        self.rng = np.random.default_rng(0)
        self.n = 0

    def __call__(self, hint):
        self.n += 1
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is typing.Any or hint is None or hint is type(None):
            return None
        if origin in (typing.Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            return None if self.n % 3 == 0 else self(options[0])
        if hint is bool:
            return self.n % 2 == 0
        if hint is int:
            return [7, -3, 2**40, 0][self.n % 4]
        if hint is float:
            return [0.1, -0.0, math.nan, math.inf, -math.inf, 1e-310, 2.5][self.n % 7]
        if hint is str:
            return ["baseline", "batch norm", "ü β/γ", ""][self.n % 4]
        if hint is np.ndarray:
            dtype = DTYPES[self.n % len(DTYPES)]
            shape = [(2, 3), (4,), (), (0, 2), (2, 2, 3)][self.n % 5]
            values = self.rng.normal(size=shape) * 100
            if np.issubdtype(dtype, np.floating) and values.size:
                values.flat[0] = np.nan
            return values.astype(dtype)
        if hint is torch.Tensor:
            return torch.randn(3, 2) if self.n % 2 else torch.arange(5)
        if dataclasses.is_dataclass(hint):
            if hint.__name__ == "Config":
                return hint()  # the experiment's real default config
            hints = typing.get_type_hints(hint)
            return hint(**{f.name: self(hints[f.name]) for f in dataclasses.fields(hint)})
        if hint is dict or origin is dict:
            if not args:  # a bare `dict`: a mixed, nested one
                return {
                    "baseline": self(np.ndarray),
                    "nested": {"a": [1.5, math.nan, 3], "t": (1, "x", None)},
                    "n": 3,
                }
            return {self(args[0]): self(args[1]) for _ in range(3)}
        if hint is tuple or origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self(args[0]) for _ in range(3))
            return tuple(self(a) for a in args)
        if hint is list or origin is list:
            return [self(args[0] if args else float) for _ in range(3)]
        raise AssertionError(f"no maker for {hint!r}")


def assert_identical(a, b, where="result"):
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray | np.generic):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), f"{where}: values differ"
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, float):
        assert repr(a) == repr(b) and math.copysign(1, a) == math.copysign(1, b), where
    elif isinstance(a, dict):
        assert len(a) == len(b), f"{where}: keys differ"
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            assert_identical(ka, kb, f"{where} key {ka!r}")
            assert_identical(va, vb, f"{where}[{ka!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("name", sorted(experiments.available()))
def test_every_experiments_result_round_trips_exactly(name, tmp_path):
    module = experiments.get(name)
    make = Maker()
    for attempt in range(3):  # different values (None or not, dtypes, shapes) each time
        make.n = attempt
        original = make(module.Result)
        path = tmp_path / f"{attempt}.npz"
        results.save(path, original, experiment=name)
        assert results.read(path)[0] == name
        assert_identical(original, results.load(path, experiment=name))


def test_dict_keys_of_any_stored_type_and_numpy_scalars_survive(tmp_path):
    value = {
        ("batch norm", 0.5): np.arange(3),
        (1, 2): "t",
        7: [np.float32(1.25), np.int64(-4), np.bool_(True)],
        None: (),
    }
    results.save(tmp_path / "x.npz", value)
    assert_identical(value, results.load(tmp_path / "x.npz"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), r"result: a result cannot hold a builtins.object"),
        ({"a": [np.array([None])]}, r"result\['a'\]\[0\]: a numpy array of Python objects"),
        ({"p": __import__("pathlib").Path(".")}, r"result\['p'\]: a result cannot hold a"),
    ],
)
def test_values_that_are_not_data_are_refused_before_writing(value, message, tmp_path):
    with pytest.raises(TypeError, match=message):
        results.save(tmp_path / "x.npz", value)


def test_a_dataclass_from_outside_the_package_is_refused(tmp_path):
    @dataclasses.dataclass
    class Mine:
        x: int = 1

    with pytest.raises(TypeError, match="defined outside the bnguide package"):
        results.save(tmp_path / "x.npz", Mine())


def _resave(path, edit):
    """Rewrite a result file with ``edit`` applied to its JSON and every checksum made valid."""
    meta, arrays = results.read_meta(path)
    edit(meta)
    meta["sha256"] = results._checksum(meta, arrays)
    results._write_archive(path, meta, arrays)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(version=99), "format version 99; this bnguide reads version 1"),
        (lambda m: m.update(format="other"), "no bnguide-result header"),
        (
            lambda m: m["tree"].update({"__dataclass__": "os:system"}),
            "names a class outside the bnguide package",
        ),
        (
            lambda m: m["tree"].update({"__dataclass__": "bnguide.experiments.ghost_batch:Nope"}),
            "which this version of bnguide does not have",
        ),
        (lambda m: m["tree"]["fields"].pop("labels"), "with fields .* but this version"),
    ],
)
def test_unknown_or_tampered_files_are_refused(tmp_path, edit, message):
    from bnguide.experiments import ghost_batch

    path = tmp_path / "r.npz"
    results.save(path, ghost_batch.Result(ghost_batch.Config(), ["a"], *[np.zeros(2)] * 6))
    _resave(path, edit)
    with pytest.raises(results.ResultFileError, match=message):
        results.load(path)


def test_an_edited_number_fails_the_checksum(tmp_path):
    from bnguide.experiments import ghost_batch

    path = tmp_path / "r.npz"
    results.save(path, ghost_batch.Result(ghost_batch.Config(), ["a"], *[np.zeros(2)] * 6))
    raw = path.read_bytes()
    edited = raw.replace(b'"epochs": 40', b'"epochs": 41')  # same length: zip stays valid
    assert edited != raw
    path.write_bytes(edited)
    with pytest.raises(results.ResultFileError, match="is damaged|fails its SHA-256 checksum"):
        results.load(path)


def test_no_result_reader_unpickles():
    import inspect

    from bnguide import cache, cli

    for module in (results, cache, cli):
        assert "pickle.load" not in inspect.getsource(module), module.__name__
