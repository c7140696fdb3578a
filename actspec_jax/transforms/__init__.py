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
from actspec_jax.transforms.mobius import (
    SparseTerms,
    fourier_to_moebius_dense,
    fourier_to_moebius_sparse,
    game_table,
    inverse_moebius_transform,
    moebius_to_fourier_dense,
    moebius_to_fourier_sparse,
    moebius_transform,
    subset_sum,
    superset_sum,
)
from actspec_jax.transforms.wht import default_block_bits, fwht, hadamard_matrix, ifwht

__all__ = [
    "SparseTerms",
    "characters",
    "default_block_bits",
    "enumerate_masks",
    "fourier_to_moebius_dense",
    "fourier_to_moebius_sparse",
    "fwht",
    "game_table",
    "hadamard_matrix",
    "ifwht",
    "index_to_subset",
    "inverse_moebius_transform",
    "membership_from_packed",
    "moebius_to_fourier_dense",
    "moebius_to_fourier_sparse",
    "moebius_transform",
    "num_words",
    "pack_subsets",
    "packed_from_tuples",
    "subset_sum",
    "subset_to_index",
    "subsets_from_indices",
    "superset_sum",
    "unpack_subsets",
]
