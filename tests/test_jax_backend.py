"""The layers under Keras's JAX backend: forward and backward, in a subprocess
(the backend is chosen once per process)."""

import os
import textwrap

from tests.conftest import run_python

SCRIPT = textwrap.dedent(
    """
    import jax, keras, numpy as np
    assert keras.backend.backend() == "jax"
    from simmim_tf.models import SimMIMBackbone, SimMIMVQA
    from tests.conftest import TINY_BACKBONE, tiny_inputs
    model = SimMIMVQA(SimMIMBackbone(**TINY_BACKBONE), 5)
    x = tiny_inputs()
    y = np.array([1, 3])
    logits = model(x)
    assert logits.shape == (2, 5)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    def loss(trainable):
        out, _ = model.stateless_call(trainable, model.non_trainable_variables, x)
        return loss_fn(y, out)
    grads = jax.grad(loss)([v.value for v in model.trainable_variables])
    norms = [float(np.linalg.norm(g)) for g in grads]
    assert all(np.isfinite(norms)) and sum(n > 0 for n in norms) > 0.9 * len(norms), norms
    model.compile()
    model.fit(x, y, epochs=2, verbose=0)
    # Masked-image pretraining: random masks in the jitted step, and a loss that falls.
    from simmim_tf.models import SimMIMMaskedImagePretrainer
    pretrainer = SimMIMMaskedImagePretrainer(SimMIMBackbone(**TINY_BACKBONE), seed=0)
    ramp = np.linspace(0, 255, 32)[:, None, None] * np.ones((1, 32, 3))
    images = np.repeat(ramp[None], 8, 0).astype("uint8")
    pretrainer.compile(keras.optimizers.AdamW(3e-3))
    history = pretrainer.fit(images, batch_size=4, epochs=6, verbose=0).history["loss"]
    assert history[-1] < history[0], history
    # The jitted step draws new masks: the seed state is a model variable.
    seed_before = np.array(pretrainer.seed_generator.state.value)
    pretrainer.fit(images[:4], batch_size=4, epochs=1, verbose=0)
    assert not np.array_equal(seed_before, np.array(pretrainer.seed_generator.state.value))
    # Retrieval: both towers and the contrastive loss in the jitted step.
    from simmim_tf.models import SimMIMRetriever
    retriever = SimMIMRetriever(SimMIMBackbone(**TINY_BACKBONE), 8)
    retriever.compile(learning_rate=3e-3)
    pairs = tiny_inputs(batch=4, seed=1)
    history = retriever.fit(pairs, batch_size=4, epochs=8, verbose=0).history["loss"]
    assert history[-1] < history[0], history
    # Captioning: the causal decoder in the jitted step; its cached step
    # equals the full pass.
    from simmim_tf.models import SimMIMCaptioner
    captioner = SimMIMCaptioner(SimMIMBackbone(**TINY_BACKBONE), 1)
    captioner.compile(learning_rate=3e-3)
    ids = pairs["token_ids"]
    history = captioner.fit(
        {"images": pairs["images"], "token_ids": ids[:, :-1]}, ids[:, 1:], batch_size=4,
        epochs=8, verbose=0,
    ).history["loss"]
    assert history[-1] < history[0], history
    regions = captioner.backbone.encode_image(pairs["images"])
    full = np.asarray(captioner.decoder(ids, regions))
    logits, _ = captioner.decoder.step(ids[:, :1], np.zeros((4, 1), "int32"), regions,
                                       captioner.decoder.empty_cache(4))
    np.testing.assert_allclose(np.asarray(logits), full[:, 0], atol=1e-4)
    print("JAX_OK", len(grads))
    """
)


# XLA's optimisation passes make compiling, not running, most of this test's
# time; the test checks what the graph computes, not its speed (alone on one
# core: 109 s without them, 164 s with them, 2026-12-02).
JAX_ENV = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "true"}


def test_forward_and_backward_under_jax():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = run_python(SCRIPT, root, env=JAX_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "JAX_OK" in result.stdout
