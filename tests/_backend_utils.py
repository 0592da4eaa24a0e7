"""Backend-specific helpers the tests need (gradients, tensor conversion).

Library code uses keras.ops only; tests need each framework's autodiff to
check gradients, so that part lives here, once."""

import keras
import numpy as np


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def layer_gradients(layer, x):
    """Gradients of sum(layer(x)) (summed in float32) with respect to the
    input and to each trainable variable of `layer`. Returns numpy arrays:
    (output, input_gradient, [variable gradients])."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, "float32"))
        grads = tape.gradient(
            loss, [x] + [v.value for v in layer.trainable_variables]
        )
        return to_numpy(y), to_numpy(grads[0]), [to_numpy(g) for g in grads[1:]]
    if name == "torch":
        import torch

        if isinstance(x, torch.Tensor):  # e.g. a bfloat16 tensor
            x = x.detach().clone().requires_grad_(True)
        else:
            x = torch.tensor(np.asarray(x), requires_grad=True)
        layer.zero_grad()
        y = layer(x)
        torch.sum(y.float()).backward()
        return (
            to_numpy(y.detach()),
            to_numpy(x.grad),
            [to_numpy(v.value.grad) for v in layer.trainable_variables],
        )
    if name == "jax":
        import jax
        import jax.numpy as jnp

        if not layer.built:
            layer(x)
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss_fn(trainable, x):
            y, _ = layer.stateless_call(trainable, non_trainable, x)
            return jnp.sum(y.astype("float32")), y

        (loss, y), (g_vars, g_x) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True
        )(trainable, jnp.asarray(x))
        return to_numpy(y), to_numpy(g_x), [to_numpy(g) for g in g_vars]
    raise NotImplementedError(name)


def function_gradients(fn, *args):
    """Value of `fn(*args)` (a scalar) and its gradients with respect to each
    argument, as numpy arrays."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        args = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            for a in args:
                tape.watch(a)
            value = fn(*args)
        grads = tape.gradient(value, args)
        grads = [np.zeros(a.shape, "float32") if g is None else to_numpy(g)
                 for a, g in zip(args, grads)]
        return float(to_numpy(value)), grads
    if name == "torch":
        import torch

        args = [torch.tensor(np.asarray(a), requires_grad=True) for a in args]
        value = fn(*args)
        value.backward()
        grads = [np.zeros(tuple(a.shape), "float32") if a.grad is None
                 else to_numpy(a.grad) for a in args]
        return float(to_numpy(value.detach())), grads
    if name == "jax":
        import jax
        import jax.numpy as jnp

        args = [jnp.asarray(a) for a in args]
        value, grads = jax.value_and_grad(
            fn, argnums=tuple(range(len(args)))
        )(*args)
        return float(value), [to_numpy(g) for g in grads]
    raise NotImplementedError(name)


def backend_runs_channels_first():
    """False only under TensorFlow on a device that cannot run NCHW
    convolutions (a CPU without oneDNN: TensorFlow enables it only on CPUs
    with AVX512-VNNI/BF16 or AMX)."""
    if keras.backend.backend() != "tensorflow":
        return True
    from keras_pu.hardware import tensorflow_runs_channels_first

    return tensorflow_runs_channels_first()


NO_CHANNELS_FIRST_REASON = (
    "TensorFlow runs channels-first convolutions on a CPU only with oneDNN, "
    "which it enables only on CPUs with AVX512-VNNI/BF16 or AMX; this CPU "
    "has neither (keras-pu's models fall back to channels-last compute: "
    "tests/test_models.py)"
)
