"""Item 6: parameters sharded by the user over their own "model" mesh axis (4 forced host devices)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scale._subprocess import run_child

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def child() -> dict:
    return run_child(HERE / "sharded_params_child.py", devices=4)


def test_user_sharded_parameters_work_with_both_solvers(child):
    assert child["devices"] == 4 and child["params_sharded"] is True
    errors = {k: v for k, v in child.items() if k.endswith("_error")}
    assert not errors, errors
    for devices in (1, 4):  # the mask mesh composes with the user's, or is not used at all
        assert child[f"exact_{devices}_max_diff"] <= 1e-6
        assert child[f"gl_{devices}_same"] is True
        assert child[f"gl_{devices}_max_diff"] <= 1e-5
