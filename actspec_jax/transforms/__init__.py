"""Transforms between value tables, Fourier spectra and subset indices."""

from actspec_jax.transforms.indexing import (
    characters,
    enumerate_masks,
    index_to_subset,
    membership_from_packed,
    num_words,
    pack_subsets,
    packed_from_tuples,
    subset_to_index,
    subsets_from_indices,
    unpack_subsets,
)
from actspec_jax.transforms.wht import default_block_bits, fwht, hadamard_matrix, ifwht

__all__ = [
    "characters",
    "default_block_bits",
    "enumerate_masks",
    "fwht",
    "hadamard_matrix",
    "ifwht",
    "index_to_subset",
    "membership_from_packed",
    "num_words",
    "pack_subsets",
    "packed_from_tuples",
    "subset_to_index",
    "subsets_from_indices",
    "unpack_subsets",
]
