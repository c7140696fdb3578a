"""Must-show: sharded results equal one-device results, on 4 forced host devices."""

from __future__ import annotations

from pathlib import Path

import pytest
from scale._subprocess import run_child

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def child() -> dict:
    return run_child(HERE / "multidevice_child.py", devices=4)


def test_child_sees_four_devices(child):
    assert child["devices"] == 4


@pytest.mark.parametrize("mode", ["direct", "incremental"])
def test_sharded_mask_values_are_bitwise_equal(child, mode):
    assert child[f"{mode}_table_sharded_over"] == 4
    assert child[f"{mode}_table_bitwise_equal"] is True
    assert child[f"{mode}_evaluation"] == mode


@pytest.mark.parametrize("mode", ["direct", "incremental"])
def test_sharded_spectra_equal_single_device_spectra(child, mode):
    assert child[f"{mode}_solver_devices"] == [1, 4]
    assert child[f"{mode}_spectrum_max_diff"] <= 1e-6
    assert child[f"{mode}_truth_max_err"] <= 1e-5
    assert child[f"{mode}_same_top_terms"] is True


def test_sharded_batch_of_outputs(child):
    assert child["batch_max_diff"] <= 1e-6


def test_sharded_progress_counts_all_masks(child):
    done = [d for d, _ in child["progress"]]
    assert done == sorted(done) and done[-1] == 512
    assert all(t == 512 for _, t in child["progress"])


def test_sharded_solve_resumes_from_its_checkpoint(child):
    assert child["checkpoint_stopped"] is True and child["checkpoint_written"] is True
    assert child["checkpoint_resumed_sharded_over"] == 4
    assert child["checkpoint_resumed_bitwise_equal"] is True


def test_sharded_fwht_matches_single_device(child):
    assert child["fwht_output_sharded_over"] == 4
    assert child["fwht_max_diff"] <= 1e-3  # |values| ~ 32 after the transform of N(0,1) data
    assert child["fwht_tiny_max_diff"] == 0.0


def test_too_many_devices_and_odd_counts_are_clear_errors(child):
    assert "asked for 8 devices but only 4" in child["error_too_many"]
    assert "xla_force_host_platform_device_count=8" in child["error_too_many"]
    assert "power-of-two" in child["error_not_power_of_two"]


def test_sharded_map_equals_lax_map_bitwise(child):
    assert child["sharded_map_shape"] == [7, 16]  # 7 chunks padded to 8 over 4 devices, then cut
    assert child["sharded_map_bitwise_equal"] is True


@pytest.mark.parametrize("order", ["influence"])
def test_sharded_goldreich_levin_equals_single_device(child, order):
    assert child[f"gl_{order}_devices"] == [1, 4]
    assert child[f"gl_{order}_same_subsets"] is True
    assert child[f"gl_{order}_coefficients_bitwise"] is True
    evaluations = child[f"gl_{order}_evaluations"]
    assert evaluations[0] == evaluations[1]
    assert child[f"gl_{order}_recovered"] == 4  # the planted terms are found, too


def test_compressive_solve_splits_its_chunks_over_the_devices(child):
    """CompressiveSolver(devices=4): every chunk of masks is cut in four (each device evaluates a
    quarter), all 4,000 masks of the plan once; the same terms as on one device."""
    assert child["cs_devices"] == [1, 4]
    assert child["cs_rows"] == [4000, 4000]
    assert child["cs_largest_call"][1] * 4 == child["cs_largest_call"][0]
    assert child["cs_calls"][1] > child["cs_calls"][0]
    assert child["cs_same_subsets"] is True and child["cs_max_diff"] <= 1e-6
    assert child["cs_recovered"] == 4
