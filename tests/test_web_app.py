"""`simmim-tf export --web`: the page answers, captions and searches in a
real browser (headless Chromium, driven by playwright) as the Python edge
runtime does.

Chromium is Debian's `chromium` package, which `make test` installs once;
LiteRT.js comes from simmim_tf/web/node_modules (`npm ci`, also `make`'s).
The bars are the issue's targets: the page's answers equal the edge
runtime's on >= 99% of the test questions with the float32 model and
>= 98% with int8.
"""

import functools
import http.server
import json
import os
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from simmim_tf.cli import main
from simmim_tf.data.vqa_dataset import read_questions
from simmim_tf.edge import EdgePredictor
from simmim_tf.edge.edge_captioner import EdgeCaptioner
from simmim_tf.edge.edge_retriever import EdgeRetriever
from simmim_tf.errors import SimMIMInputError
from simmim_tf.export.web_export import export_web
from simmim_tf.preprocessing.image_conversion import convert_image

CHROMIUM = "/usr/bin/chromium"
# As root in a closed network: no sandbox, no GPU, no background connections.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(trained_export, captioning_export, retrieval_export, tmp_path_factory):
    """Pages of the trained exports, served with their data beside them:
    web/ (the CLI's, VQA float32), web_all/ (VQA in every variant, the
    captioner and the retriever, written one export at a time)."""
    root = tmp_path_factory.mktemp("site")
    args = ["export", "--run", trained_export["run"], "--out", str(root / "export"),
            "--format", "tflite", "--quantize", "float32", "--web", str(root / "web")]  # fmt: skip
    assert main(args) == 0
    web_all = str(root / "web_all")
    assert export_web(trained_export["export"], web_all) == ["float32", "float16", "int8"]
    assert export_web(captioning_export["export"], web_all) == ["float32"]
    assert export_web(retrieval_export["export"], web_all) == ["float32"]
    shutil.copytree(trained_export["data"], root / "data")
    shutil.copytree(captioning_export["data"], root / "caption_data")
    shutil.copytree(retrieval_export["data"], root / "retrieval_data")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {
        "root": root,
        "url": f"http://127.0.0.1:{server.server_address[1]}",
        "captioning": captioning_export["export"],
        "retrieval": retrieval_export["export"],
    }
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.isfile(CHROMIUM), f"{CHROMIUM} not found: `make test` installs Debian's chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(browser, url, variant):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(f"{url}/index.html?accelerator=wasm&variant={variant}")
    page.wait_for_function("window.simmim && window.simmim.ready", timeout=60_000)
    assert not errors, errors
    return page


def _test_questions(data):
    return [r for r in read_questions(data) if r["split"] == "test"]


def _page_answers(page, questions):
    return page.evaluate(
        """async (questions) => {
            const out = [];
            for (const [url, question] of questions) {
                const p = await window.simmim.answerUrl(url, question);
                out.push({answer: p.answer, visual: Array.from(p.visualMap),
                          anchor: p.anchorMap && Array.from(p.anchorMap), ms: p.ms});
            }
            return out;
        }""",
        [[f"../data/{q['image']}", q["question"]] for q in questions],
    )


@pytest.mark.parametrize(("variant", "bar"), [("float32", 0.99), ("int8", 0.98)])
def test_the_page_answers_as_the_edge_runtime_does(site, browser, variant, bar):
    root = site["root"]
    questions = _test_questions(str(root / "data"))
    assert len(questions) >= 200
    page = _open(browser, site["url"] + "/web_all", variant)
    in_browser = _page_answers(page, questions)
    edge = EdgePredictor(str(root / "web_all" / f"model_{variant}.tflite"), num_threads=1)
    agree, maps = 0, []
    for q, web in zip(questions, in_browser, strict=True):
        image = np.asarray(Image.open(root / "data" / q["image"]))
        python = edge.predict(image, q["question"])
        agree += web["answer"] == python.answer
        maps.append((web, python))
    assert agree / len(questions) >= bar, f"{variant}: {agree} of {len(questions)} agree"
    if variant == "float32":
        # The maps drawn are the edge runtime's (to float32 rounding).
        for web, python in maps[:20]:
            np.testing.assert_allclose(web["visual"], python.attention_map.ravel(), atol=1e-5)
            np.testing.assert_allclose(web["anchor"], python.anchor_map.ravel(), atol=1e-5)
    page.close()


def test_the_page_names_unknown_words_and_draws_the_maps(site, browser):
    page = _open(browser, site["url"] + "/web", "float32")
    assert page.evaluate("window.simmim.model.variant") == "float32"
    image = _test_questions(str(site["root"] / "data"))[0]["image"]
    prediction = page.evaluate(
        "async (url) => window.simmim.answerUrl(url, 'Is the zebra left of the red object?')",
        f"../data/{image}",
    )
    assert prediction["unknownWords"] == ["zebra"]
    assert page.locator("#unknown").inner_text().endswith("zebra")
    assert page.locator("#answer").inner_text() == prediction["answer"]
    assert len(prediction["topK"]) == 3
    assert "anchor" in page.locator("#legend").inner_text()
    page.screenshot(path=str(site["root"] / "page.png"), full_page=True)
    pixels = np.asarray(Image.open(site["root"] / "page.png").convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # the picture and maps drawn
    page.close()


def _test_image_names(data):
    """The test split's images of a captions folder (CLEVR-2D's)."""
    with open(os.path.join(data, "captions.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return sorted({r["image"] for r in records if r["split"] == "test"})


def test_the_page_captions_as_the_edge_runtime_does(site, browser):
    root = site["root"]
    images = _test_image_names(root / "caption_data")
    page = _open(browser, site["url"] + "/web_all", "float32")
    captioner = EdgeCaptioner(site["captioning"], "float32")
    for name in images:
        in_browser = page.evaluate(
            "async (u) => window.simmim.captionUrl(u)", f"../caption_data/{name}"
        )
        python = captioner.caption(np.asarray(Image.open(root / "caption_data" / name)))
        assert in_browser["caption"] == python, name
    assert page.locator("#caption").inner_text() == python
    page.close()


def test_the_page_ranks_pictures_as_the_edge_runtime_does(site, browser):
    root = site["root"]
    names = _test_image_names(root / "retrieval_data")
    retriever = EdgeRetriever(site["retrieval"], "float32")
    embeddings = retriever.embed_images(
        [np.asarray(Image.open(root / "retrieval_data" / n)) for n in names]
    )
    page = _open(browser, site["url"] + "/web_all", "float32")
    for query in ("a large red circle", "a small blue square", "two objects"):
        hits = page.evaluate(
            "async ([urls, q]) => window.simmim.searchUrls(urls, q, 100)",
            [[f"../retrieval_data/{n}" for n in names], query],
        )
        scores = embeddings @ retriever.embed_text(query)
        in_browser = {h["name"]: h["score"] for h in hits}
        urls = [f"../retrieval_data/{n}" for n in names]
        np.testing.assert_allclose([in_browser[u] for u in urls], scores, atol=1e-4)
        assert [h["score"] for h in hits] == sorted(in_browser.values(), reverse=True)
        assert hits[0]["name"] == urls[int(np.argmax(scores))]
    assert page.locator("#hits img").count() == len(names)
    page.close()


def test_images_are_converted_as_the_python_side_does(site, browser):
    """A picture of another size and shape, with transparency, resized in
    the page (simmim.js) and in Python (image_conversion): the same pixels."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (61, 97, 4), dtype=np.uint8)
    rgba[:5, :7, 3] = 0  # a transparent corner: white
    page = _open(browser, site["url"] + "/web", "float32")
    in_browser = page.evaluate(
        """async ([data, h, w]) => {
            const m = await import('./simmim.js');
            return Array.from(m.convertImage(Uint8ClampedArray.from(data), h, w, 75));
        }""",
        [rgba.ravel().tolist(), 61, 97],
    )
    python = convert_image(rgba, 75)
    np.testing.assert_array_equal(np.array(in_browser, np.uint8).reshape(75, 75, 3), python)
    page.close()


def test_web_export_refuses_what_it_cannot_serve(tmp_path):
    with pytest.raises(SimMIMInputError, match="simmim_meta.json"):
        export_web(str(tmp_path), str(tmp_path / "web"))
