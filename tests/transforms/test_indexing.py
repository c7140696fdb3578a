"""The sign convention of actspec_jax.transforms.indexing, checked end to end."""

import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.transforms import (
    characters,
    enumerate_masks,
    index_to_subset,
    membership_from_packed,
    pack_subsets,
    packed_from_tuples,
    subset_to_index,
    subsets_from_indices,
    unpack_subsets,
)


def test_mask_zero_keeps_everything_and_bit_i_ablates_neuron_i():
    masks = np.asarray(enumerate_masks(0, 8, 3))
    np.testing.assert_array_equal(masks[0], [1, 1, 1])  # index 0: unmodified model
    np.testing.assert_array_equal(masks[1], [-1, 1, 1])  # bit 0 → neuron 0 ablated
    np.testing.assert_array_equal(masks[4], [1, 1, -1])  # bit 2 → neuron 2 ablated
    np.testing.assert_array_equal(masks[7], [-1, -1, -1])


def test_positive_first_order_coefficient_means_keeping_raises_output():
    # f = 1 when neuron 1 is kept, 0 when ablated → f̂({1}) = +1/2 under +1 = kept.
    problem = asj.FunctionProblem(lambda x: (x[:, 1] > 0).astype(jnp.float32), 3)
    spec = asj.ExactSolver()(problem).to_dict()
    assert spec == pytest.approx({(): 0.5, (1,): 0.5})


def test_wht_index_is_the_subset_bitmask():
    problem = asj.FunctionProblem(lambda x: x[:, 0] * x[:, 3], 5)
    dense = np.asarray(asj.ExactSolver().dense(problem))
    assert np.argmax(np.abs(dense)) == subset_to_index((0, 3)) == 0b1001
    assert dense[0b1001] == pytest.approx(1.0)


def test_subset_index_round_trip():
    for subset in [(), (0,), (2, 5), (0, 1, 2, 40, 63)]:
        assert index_to_subset(subset_to_index(subset)) == subset


def test_packing_round_trip_across_words(rng):
    membership = rng.random((7, 70)) < 0.3
    packed = pack_subsets(membership)
    assert packed.shape == (7, 3) and packed.dtype == np.uint32
    np.testing.assert_array_equal(unpack_subsets(packed, 70), membership)
    np.testing.assert_array_equal(np.asarray(membership_from_packed(jnp.asarray(packed), 70)), membership)
    assert packed_from_tuples([(0, 33, 69)], 70)[0].tolist() == [1, 2, 1 << 5]


def test_subsets_from_indices_matches_tuples():
    packed = subsets_from_indices(np.array([0b1011, 1 << 40]), 45)
    np.testing.assert_array_equal(packed, packed_from_tuples([(0, 1, 3), (40,)], 45))


def test_characters_are_products_of_mask_entries(rng):
    masks = np.where(rng.random((20, 9)) < 0.5, 1.0, -1.0)
    membership = (rng.random((6, 9)) < 0.4).astype(np.float32)
    expected = np.array([[np.prod(m[s > 0]) for s in membership] for m in masks])
    np.testing.assert_array_equal(
        np.asarray(characters(jnp.asarray(masks), jnp.asarray(membership))), expected
    )


def test_tuple_outside_range_is_rejected():
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        packed_from_tuples([(1, 4)], 4)
