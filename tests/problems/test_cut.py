import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import actspec_jax as asj


class TinyLinen(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(6, name="fc1")(x))
        h = Block(name="block")(h)
        return nn.Dense(3, name="out")(h)


class Block(nn.Module):
    @nn.compact
    def __call__(self, h):
        return h + nn.Dense(6, name="inner")(h)  # residual: the head needs more than the activations


class TinyNnx(nnx.Module):
    def __init__(self, rngs):
        self.fc1 = nnx.Linear(4, 6, rngs=rngs)
        self.layers = nnx.List([nnx.Linear(6, 6, rngs=rngs), nnx.Linear(6, 3, rngs=rngs)])

    def __call__(self, x):
        h = nnx.relu(self.fc1(x))
        return self.layers[1](h + self.layers[0](h))


@pytest.fixture
def linen_model():
    module = TinyLinen()
    x = jax.random.normal(jax.random.key(1), (5, 4))
    return module, module.init(jax.random.key(0), x), x


@pytest.mark.parametrize("layer", ["fc1", "block", "block/inner"])
def test_linen_cut_reproduces_the_model(linen_model, layer):
    module, variables, x = linen_model
    cut = asj.cut_linen(module, variables, layer)
    acts = cut.activations(x)
    np.testing.assert_allclose(cut.outputs(acts, x), module.apply(variables, x), rtol=1e-6)
    # Replacing the activations changes the output (the head really uses them).
    assert not np.allclose(cut.outputs(acts * 0.0, x), module.apply(variables, x))


def test_linen_cut_is_jittable_and_accepts_bare_params(linen_model):
    module, variables, x = linen_model
    cut = asj.cut_model(module, variables["params"], "fc1")
    acts = jax.jit(cut.features)(cut.params, x)
    out = jax.jit(cut.head)(cut.params, acts, x)
    np.testing.assert_allclose(out, module.apply(variables, x), rtol=1e-6)


def test_unknown_linen_layer_lists_available_layers(linen_model):
    module, variables, x = linen_model
    cut = asj.cut_linen(module, variables, "fc9")
    with pytest.raises(
        asj.UnknownLayerError, match=r"no layer 'fc9'.*'block/inner \[5, 6\]'.*'fc1 \[5, 6\]'"
    ):
        cut.activations(x)
    assert set(asj.list_layers(module, variables, x)) == {"fc1", "block", "block/inner", "out"}


def test_shared_module_called_twice_is_refused():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, x):
            dense = nn.Dense(4, name="shared")
            return dense(dense(x))

    module = Twice()
    x = jnp.ones((2, 4))
    variables = module.init(jax.random.key(0), x)
    cut = asj.cut_linen(module, variables, "shared")
    with pytest.raises(asj.ActSpecError, match="called 2 times"):
        cut.outputs(cut.activations(x), x)


def test_activations_with_token_axis_are_masked_at_every_position():
    class Tokens(nn.Module):
        @nn.compact
        def __call__(self, x):  # x: [m, T, d]
            h = nn.relu(nn.Dense(5, name="mlp")(x))
            return nn.Dense(2, name="out")(h.mean(axis=1))

    module = Tokens()
    x = jax.random.normal(jax.random.key(0), (3, 7, 4))
    variables = module.init(jax.random.key(1), x)
    cut = asj.cut_linen(module, variables, "mlp")
    problem = asj.masked_problem(cut, x, output="logit:1", aggregate="none")
    mask = jnp.array([[1.0, -1.0, 1.0, 1.0, -1.0]])
    acts = cut.activations(x)
    expected = cut.outputs(acts * jnp.array([1.0, 0.0, 1.0, 1.0, 0.0]), x)[:, 1]
    np.testing.assert_allclose(problem.evaluate(mask)[0], expected, rtol=1e-6)


@pytest.mark.parametrize("layer", ["fc1", "layers/0"])
def test_nnx_cut_reproduces_the_model(layer):
    model = TinyNnx(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (5, 4))
    cut = asj.cut_model(model, None, layer)
    acts = jax.jit(cut.features)(cut.params, x)
    np.testing.assert_allclose(jax.jit(cut.head)(cut.params, acts, x), model(x), rtol=1e-5)
    assert not np.allclose(cut.outputs(acts + 1.0, x), model(x))
    assert model.fc1.kernel[...].shape == (4, 6)  # the user's model is left untouched


def test_unknown_nnx_layer_lists_available_layers():
    with pytest.raises(asj.UnknownLayerError, match=r"'fc1', 'layers', 'layers/0', 'layers/1'"):
        asj.cut_nnx(TinyNnx(nnx.Rngs(0)), "fc2")


def test_plain_functions_with_two_or_three_argument_heads():
    w1, w2 = jnp.ones((4, 3)), jnp.arange(6.0).reshape(3, 2)
    features = lambda p, x: jax.nn.relu(x @ p[0])  # noqa: E731
    x = jnp.ones((2, 4))
    two = asj.cut_functions(features, lambda p, a: a @ p[1], (w1, w2))
    three = asj.cut_functions(features, lambda p, a, inputs: a @ p[1] + inputs.sum(), (w1, w2))
    acts = two.activations(x)
    np.testing.assert_allclose(two.outputs(acts, x), acts @ w2)
    np.testing.assert_allclose(three.outputs(acts, x), acts @ w2 + 8.0)


def test_cut_model_rejects_other_objects():
    with pytest.raises(TypeError, match="cut_functions"):
        asj.cut_model(lambda x: x, None, "a")


def test_cut_model_passes_its_family_options_and_refuses_another_familys(linen_model):
    module, variables, x = linen_model
    cut = asj.cut_model(module, variables, "fc1", apply_kwargs={})
    np.testing.assert_allclose(cut.outputs(cut.activations(x), x), module.apply(variables, x), rtol=1e-6)
    with pytest.raises(TypeError, match=r"batched, call is not an option of a Flax linen cut"):
        asj.cut_model(module, variables, "fc1", call=lambda m, v: m(v), batched=True)
    nnx_model = TinyNnx(nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"method is not an option of a Flax nnx cut \(it takes call\)"):
        asj.cut_model(nnx_model, None, "fc1", method="__call__")
    assert asj.cut_model(nnx_model, None, "fc1").layer == "fc1"
