"""Sharding mask work over devices with JAX's own distribution (``jax.sharding`` + ``shard_map``).

Layout: a 1-D :class:`~jax.sharding.Mesh` with axis ``"masks"`` over ``d = 2^s`` devices.
A value table or spectrum ``float[B, 2^n]`` is split on its last axis into ``d`` contiguous
blocks, so device ``j`` holds mask indices ``k = j·2^{n−s} + r`` — the *leading* ``s`` index
bits name the device and each device enumerates and evaluates its own masks with no
communication. The Walsh–Hadamard transform of such a table factorises as
``H_{2^n} = H_{2^s} ⊗ H_{2^{n−s}}``: every device transforms its block over the low
``n − s`` bits locally, then one ``all_to_all`` makes the device bits local, a
``d × d`` Hadamard combines them, and a second ``all_to_all`` restores the layout
(:func:`fwht_sharded`).

Multi-host (several processes, each with its local devices): call
``jax.distributed.initialize(coordinator_address, num_processes, process_id)`` in every
process before any other JAX call, then build the mesh over ``jax.devices()`` (global) with
:func:`mask_mesh`; every process runs the same program (see ``docs/accelerators.md``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from actspec_jax.errors import DeviceCountError
from actspec_jax.transforms.wht import fwht, hadamard_matrix

__all__ = [
    "MASK_AXIS",
    "DeviceCountError",
    "fwht_sharded",
    "gather_to_host",
    "mask_mesh",
    "mesh_size",
    "sharded_map",
    "table_sharding",
]

MASK_AXIS = "masks"

DeviceSpec = int | str | Sequence[Any] | Mesh | None


def _power_of_two(count: int) -> bool:
    return count >= 1 and count & (count - 1) == 0


def mask_mesh(devices: DeviceSpec = None, *, axis_name: str = MASK_AXIS) -> Mesh:
    """A 1-D mesh over devices for mask work.

    Args:
      devices: ``None`` or ``"all"`` — every device JAX sees (all hosts' devices after
        ``jax.distributed.initialize``), rounded down to a power of two; an ``int`` — the
        first that many devices; a sequence of devices; or a ready :class:`Mesh` (must have an
        axis named ``axis_name``; returned as is).
      axis_name: name of the mesh axis masks are split over.

    Raises:
      DeviceCountError: more devices than exist, or a count that is not a power of two
        (mask tables have ``2^n`` entries and are split into equal contiguous blocks).
    """
    if isinstance(devices, Mesh):
        if axis_name not in devices.axis_names:
            raise DeviceCountError(
                f"the mesh has axes {devices.axis_names}; masks are split over an axis named "
                f"{axis_name!r}. Build it with mask_mesh(...) or name one axis {axis_name!r}."
            )
        size = devices.shape[axis_name]
        if not _power_of_two(size):
            raise DeviceCountError(f"the mesh axis {axis_name!r} has {size} devices; use a power of two.")
        return devices
    available = jax.devices()
    if devices is None or (isinstance(devices, str) and devices == "all"):
        count = 1 << math.floor(math.log2(len(available)))
        chosen = available[:count]
    elif isinstance(devices, str):
        raise DeviceCountError(
            f"devices must be 'all', an int, a list of devices or a Mesh; got {devices!r}."
        )
    elif isinstance(devices, (int, np.integer)):
        count = int(devices)
        if count < 1:
            raise DeviceCountError(f"devices must be >= 1, got {count}.")
        if count > len(available):
            platform = available[0].platform
            hint = (
                f" On CPU, simulate more devices with XLA_FLAGS=--xla_force_host_platform_device_count"
                f"={count} set before jax is imported."
                if platform == "cpu"
                else ""
            )
            raise DeviceCountError(
                f"asked for {count} devices but only {len(available)} {platform} device(s) exist "
                f"({', '.join(str(d) for d in available)}).{hint}"
            )
        chosen = available[:count]
    else:
        chosen = list(devices)
        if not chosen:
            raise DeviceCountError("the device list is empty.")
        missing = [d for d in chosen if d not in available]
        if missing:
            raise DeviceCountError(f"devices {missing} are not among JAX's devices {available}.")
    if not _power_of_two(len(chosen)):
        raise DeviceCountError(
            f"mask tables split over a power-of-two number of devices; got {len(chosen)}. Pass "
            f"devices={1 << math.floor(math.log2(len(chosen)))} (or a Mesh of that size)."
        )
    return Mesh(np.asarray(chosen, dtype=object), (axis_name,))


def mesh_size(mesh: Mesh, axis_name: str = MASK_AXIS) -> int:
    """Number of devices along the mask axis."""
    return int(mesh.shape[axis_name])


def table_sharding(mesh: Mesh, ndim: int = 2, axis_name: str = MASK_AXIS) -> NamedSharding:
    """Sharding of a ``[..., 2^n]`` table split on its last axis over the mask axis."""
    return NamedSharding(mesh, P(*([None] * (ndim - 1)), axis_name))


def _cross_device_stage(local: jax.Array, devices: int, axis_name: str) -> jax.Array:
    """Apply ``H_d`` over the device index bits of a block-sharded ``[B, L]`` table."""
    batch, length = local.shape
    pieces = local.reshape(batch, devices, length // devices)
    # Device j' receives piece j' of every source j: [B, d (source), L/d].
    gathered = jax.lax.all_to_all(pieces, axis_name, 1, 1, tiled=True)
    h = hadamard_matrix(int(math.log2(devices)), local.dtype)
    mixed = jnp.einsum("ij,bjt->bit", h, gathered, precision=jax.lax.Precision.HIGHEST)
    back = jax.lax.all_to_all(mixed, axis_name, 1, 1, tiled=True)
    return back.reshape(batch, length)


@functools.partial(
    jax.jit, static_argnames=("mesh", "axis_name", "block_bits", "precision"), donate_argnums=(0,)
)
def _fwht_sharded_jit(
    values: jax.Array, mesh: Mesh, axis_name: str, block_bits: int | None, precision: str | None
) -> jax.Array:
    devices = mesh_size(mesh, axis_name)
    spec = P(*([None] * (values.ndim - 1)), axis_name)

    def body(local: jax.Array) -> jax.Array:
        shape = local.shape
        flat = fwht(local.reshape(-1, shape[-1]), block_bits=block_bits, precision=precision)
        return _cross_device_stage(flat, devices, axis_name).reshape(shape)

    return jax.shard_map(body, mesh=mesh, in_specs=spec, out_specs=spec)(values)


def fwht_sharded(
    values: jax.Array,
    mesh: Mesh,
    *,
    axis_name: str = MASK_AXIS,
    block_bits: int | None = None,
    precision: str | None = None,
    donate: bool = False,
) -> jax.Array:
    """Walsh–Hadamard transform of ``float[..., 2^n]`` whose last axis is split over ``mesh``.

    Same result as :func:`actspec_jax.transforms.fwht` up to float rounding (the device bits
    are combined by one ``d × d`` product instead of butterflies); the output has the
    input's sharding. Needs ``2^n ≥ d²`` (each device's block splits into ``d`` pieces);
    smaller tables are gathered and transformed on one device. ``donate=True`` lets XLA
    reuse the input buffer for the output (the input is invalidated). ``block_bits`` and
    ``precision`` as in :func:`~actspec_jax.transforms.fwht`.
    """
    devices = mesh_size(mesh, axis_name)
    length = values.shape[-1]
    if not _power_of_two(length):
        raise ValueError(f"fwht needs a last axis of length 2^n, got {length}.")
    sharding = table_sharding(mesh, values.ndim, axis_name)
    if devices == 1 or length < devices * devices:
        out = fwht(jnp.asarray(values), block_bits=block_bits, precision=precision)
        return jax.device_put(out, sharding)
    values = jax.device_put(values, sharding)
    if not donate:
        values = jnp.copy(values)
    return _fwht_sharded_jit(values, mesh, axis_name, block_bits, precision)


def sharded_map(fn: Any, shared: Any, xs: Any, mesh: Mesh | None, *, axis_name: str = MASK_AXIS) -> Any:
    """``lax.map(lambda x: fn(shared, x), xs)`` with the mapped axis split over ``mesh``.

    ``xs`` is a pytree whose leaves share a leading axis of length ``L`` (e.g. chunks of
    masks); ``shared`` (e.g. the problem) is replicated on every device. The leading axis is
    padded by repeating its last entry to a multiple of the device count ``d``; device ``j``
    maps over entries ``j·L/d …`` in order and the padding is dropped, so every entry is
    computed exactly as in the one-device ``lax.map`` (bitwise equal on CPU). The result is
    replicated on every device (one all-gather), so any process can read it on several hosts.
    Usable inside ``jit``; ``mesh=None`` or one device is the plain ``lax.map``.
    """
    if mesh is None or mesh_size(mesh, axis_name) == 1:
        return jax.lax.map(lambda x: fn(shared, x), xs)
    d = mesh_size(mesh, axis_name)
    length = jax.tree_util.tree_leaves(xs)[0].shape[0]
    padded = -(-length // d) * d

    def pad(leaf: jax.Array) -> jax.Array:
        if padded == length:
            return leaf
        tail = jnp.repeat(leaf[-1:], padded - length, axis=0)
        return jnp.concatenate([leaf, tail], axis=0)

    def body(shared: Any, local: Any) -> Any:
        return jax.lax.map(lambda x: fn(shared, x), local)

    # check_vma=False: callers may evaluate problems through a jaxpr interpreter (see
    # actspec_jax.solvers.exact.incremental), which skips jnp's varying-axis promotion.
    out = jax.shard_map(
        body, mesh=mesh, in_specs=(P(), P(axis_name)), out_specs=P(axis_name), check_vma=False
    )(shared, jax.tree_util.tree_map(pad, xs))
    replicated = NamedSharding(mesh, P())
    return jax.tree_util.tree_map(
        lambda leaf: jax.lax.with_sharding_constraint(leaf[:length], replicated), out
    )


def gather_to_host(array: jax.Array) -> np.ndarray:
    """A (possibly multi-host) sharded array as one NumPy array on this process."""
    if getattr(array, "is_fully_addressable", True):
        return np.asarray(array)
    if array.is_fully_replicated:
        return np.asarray(array.addressable_data(0))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
