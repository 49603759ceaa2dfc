"""bnguide.parity detects differences and reports none for identical modules."""

import pytest
import torch

from bnguide import nn as bnn
from bnguide.parity import compare_modules

F64 = torch.float64


def test_identical_modules_report_zero():
    a, b = torch.nn.BatchNorm1d(3, dtype=F64), torch.nn.BatchNorm1d(3, dtype=F64)
    report = compare_modules(a, b, (10, 3))
    assert report.worst() == 0.0
    assert (
        "eval output" in report.differences and "running_var after training" in report.differences
    )


def test_bnguide_matches_torch_2d():
    report = compare_modules(
        bnn.BatchNorm2d(4, dtype=F64), torch.nn.BatchNorm2d(4, dtype=F64), (6, 4, 3, 3)
    )
    assert report.worst() < 1e-12


def test_a_different_momentum_is_detected():
    report = compare_modules(
        torch.nn.BatchNorm1d(3, momentum=0.3, dtype=F64),
        torch.nn.BatchNorm1d(3, dtype=F64),
        (10, 3),
    )
    assert report.differences["train output"] < 1e-12
    assert report.differences["running_mean after training"] > 1e-3
    assert report.differences["eval output"] > 1e-3


def test_missing_tensor_is_infinite():
    report = compare_modules(
        torch.nn.BatchNorm1d(3, affine=False, dtype=F64),
        torch.nn.BatchNorm1d(3, dtype=F64),
        (10, 3),
    )
    assert report.differences["weight after training"] == float("inf")


def test_dtype_argument_and_default():
    a, b = (
        torch.nn.BatchNorm1d(3, affine=False, track_running_stats=False),
        torch.nn.BatchNorm1d(3, affine=False, track_running_stats=False),
    )
    assert compare_modules(a, b, (10, 3), dtype=F64).worst() == 0.0


def test_rejects_zero_steps():
    with pytest.raises(ValueError, match="steps must be at least 1"):
        compare_modules(torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2), (4, 2), steps=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_errors_computing_in_float32_beats_rounding_every_step(dtype):
    from bnguide.parity import reduced_precision_errors

    errors = reduced_precision_errors(dtype, shape=(32, 4, 8, 8), seed=1)
    assert set(errors) == {"bnguide", "torch", "in dtype"}
    # one rounding of the float32 result: within one unit in the last place of |y| <= 8
    assert errors["bnguide"] <= 8 * torch.finfo(dtype).eps
    assert errors["bnguide"] <= errors["torch"] and errors["in dtype"] > errors["bnguide"]


def test_parity_case_table_groups_by_source():
    from bnguide.parity import parity_case_table

    counts = {
        "test_torch_suite.py::test_module_sample": 10,
        "test_torch_suite.py::test_module_state_dict": 5,
        "test_torch_suite.py::test_op_sample": 7,
        "test_torch_nn_port.py::test_batchnorm_eval": 4,
        "test_torch_suite.py::test_scripted_modules_save_and_load": 2,
    }
    rows = {r[0]: r[1] for r in parity_case_table(counts).rows}
    assert rows["ModuleInfo samples (test_modules.py)"] == "15"
    assert rows["OpInfo samples (test_ops.py)"] == "7"
    assert rows["test_nn.py tests ported (torch and bnguide)"] == "4"
    assert rows["total"] == "28"


def test_count_parity_cases_needs_the_test_files(tmp_path):
    from bnguide.parity import count_parity_cases

    with pytest.raises(FileNotFoundError, match="root="):
        count_parity_cases(tmp_path)
