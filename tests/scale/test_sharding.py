"""Device meshes and their errors, in the test process (one CPU device)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers.common.sharding import DeviceCountError, fwht_sharded, mask_mesh


def test_default_mesh_uses_every_device():
    mesh = mask_mesh()
    assert mesh.axis_names == ("masks",)
    assert mesh.devices.size == len(jax.devices())


def test_more_devices_than_exist_is_a_clear_error():
    count = len(jax.devices()) * 2
    with pytest.raises(DeviceCountError, match=rf"asked for {count} devices but only {count // 2}"):
        mask_mesh(count)
    with pytest.raises(asj.ActSpecError, match="xla_force_host_platform_device_count"):
        asj.ExactSolver(devices=count)(synthetic.parity(4, [0]).problem)


@pytest.mark.parametrize("bad", [0, -1, "some", []])
def test_bad_device_specs_are_rejected(bad):
    with pytest.raises(DeviceCountError):
        mask_mesh(bad)


def test_a_mesh_needs_a_masks_axis():
    mesh = Mesh(np.asarray(jax.devices()[:1], dtype=object), ("data",))
    with pytest.raises(DeviceCountError, match="axis named 'masks'"):
        mask_mesh(mesh)
    assert mask_mesh(mesh, axis_name="data") is mesh


def test_one_device_mesh_transform_equals_fwht(rng):
    values = jnp.asarray(rng.standard_normal((2, 64)), jnp.float32)
    np.testing.assert_array_equal(fwht_sharded(values, mask_mesh(1)), asj.fwht(values))


def test_solver_records_devices_and_accepts_a_mesh():
    problem = synthetic.parity(5, [1, 3]).problem
    spec = asj.ExactSolver(devices=mask_mesh(1))(problem)
    assert spec.solver["devices"] == 1
    assert spec.to_dict() == {(1, 3): pytest.approx(1.0)}
