"""The edge runtime in a virtual environment that has no TensorFlow (and no
Keras): only ai-edge-litert, NumPy, Pillow and the package's source, linked
from this environment, so nothing is downloaded. It answers a question, and
builds and searches an image index with the retrieval towers."""

import os
import subprocess
import sys

import numpy
import PIL

import simmim_tf

SCRIPT = """
import sys
import numpy as np
from simmim_tf.edge import EdgePredictor
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing import load_image

model, image_path = sys.argv[1], sys.argv[2]
predictor = EdgePredictor(model)
image = load_image(image_path, predictor.image_size)
prediction = predictor.predict(image, "what is the shape of the red object?")
assert prediction.answer in predictor.answers and 0 < prediction.probability <= 1
assert abs(float(prediction.attention_map.sum()) - 1) < 1e-4
long = predictor.predict(image, "is the red object on the left? " * 20)  # truncated, answered
assert long.answer in predictor.answers
for bad, message in (
    (lambda: predictor.predict(image, "?!"), "empty question"),
    (lambda: predictor.predict(image[:0], "is it?"), "no pixels"),
    (lambda: predictor.predict(image.astype(np.float32), "is it?"), "expected uint8"),
    (lambda: load_image(sys.argv[3]), "not a readable PNG or JPEG"),
):
    try:
        bad()
        raise AssertionError("no error for " + message)
    except SimMIMInputError as e:
        assert message in str(e), e
# Retrieval: an index of the retrieval data's images, searched by text.
from simmim_tf.edge import EdgeRetriever, ImageIndex
retriever = EdgeRetriever(sys.argv[4])
index = sys.argv[5]
assert ImageIndex.build(retriever, sys.argv[6], index) == 60
results = ImageIndex(index, retriever).search("a large red circle", top_k=3)
assert len(results) == 3 and results[0][1] >= results[2][1]
try:
    ImageIndex(index, retriever).search("zebra")
    raise AssertionError("no error for a query without known words")
except SimMIMInputError as e:
    assert "none of its words" in str(e), e
try:
    import tensorflow  # noqa: F401
    raise AssertionError("tensorflow is importable in the edge environment")
except ModuleNotFoundError:
    pass
assert not any(m.split(".")[0] in ("tensorflow", "keras", "keras_hub") for m in sys.modules)
print("EDGE_OK", prediction.answer)
"""


def test_edge_runtime_without_tensorflow(trained_export, retrieval_export, tmp_path):
    venv = tmp_path / "edge_venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    here = os.path.dirname(numpy.__path__[0])  # this environment's site-packages
    assert os.path.dirname(PIL.__path__[0]) == here
    linked = tmp_path / "edge_packages"
    linked.mkdir()
    for name in ("numpy", "numpy.libs", "PIL", "pillow.libs", "ai_edge_litert"):
        if os.path.exists(os.path.join(here, name)):
            os.symlink(os.path.join(here, name), linked / name)
    os.symlink(simmim_tf.__path__[0], linked / "simmim_tf")
    (site / "edge_only.pth").write_text(f"{linked}\n")
    not_an_image = tmp_path / "photo.png"
    not_an_image.write_bytes(b"plain text, not a picture")
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            SCRIPT,
            os.path.join(trained_export["export"], "model_int8.tflite"),
            os.path.join(trained_export["data"], "images", "000299.png"),
            str(not_an_image),
            retrieval_export["export"],
            str(tmp_path / "index"),
            os.path.join(retrieval_export["data"], "images"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    assert "EDGE_OK" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]
