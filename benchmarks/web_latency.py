"""How fast and how faithfully the page of `simmim-tf export --web` answers
in a browser: headless Chromium on this CPU, LiteRT.js on WebAssembly
(XNNPACK, one thread), against the Python edge runtime on the same files.

    python -m benchmarks.web_latency --export demo_out/export --data demo_out/data \\
        --screenshot docs/web_app.png

Per variant: agreement of the page's answers with the edge runtime's on the
test split's questions (or the first --questions of them), the median time
of one answer in the page (tokens, image conversion, model, reading the
outputs; the picture already decoded) and of the model call alone, the
edge runtime's median model call on one thread (benchmarks/tflite_timing),
and the file size. Writes a JSON and a Markdown table.
"""

import argparse
import functools
import http.server
import json
import os
import tempfile
import threading

import numpy as np
from PIL import Image

from benchmarks.budgeted_training import machine
from benchmarks.tflite_timing import median_ms
from simmim_tf.data.vqa_dataset import read_questions
from simmim_tf.edge import EdgePredictor
from simmim_tf.export.web_export import export_web

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip

# In the page: each picture decoded once, then every question answered and timed.
ANSWER_ALL = """async (questions) => {
    const pictures = {};
    const out = [];
    for (const [url, question] of questions) {
        const blob = pictures[url] ? null : await (await fetch(url)).blob();
        pictures[url] = pictures[url] || await window.simmim.pixelsOf(blob);
        const {rgba, height, width} = pictures[url];
        const started = performance.now();
        const p = await window.simmim.model.answer(rgba, height, width, question);
        out.push({answer: p.answer, ms: performance.now() - started, model_ms: p.ms});
    }
    return out;
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root):
    handler = functools.partial(_Quiet, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def measure(browser, url, web_dir, data, questions, variant, warmup=20):
    page = browser.new_page()
    page.goto(f"{url}/web/index.html?accelerator=wasm&variant={variant}")
    page.wait_for_function("window.simmim && window.simmim.ready", timeout=120_000)
    feed = [[f"../data/{q['image']}", q["question"]] for q in questions]
    page.evaluate(ANSWER_ALL, feed[:warmup])
    in_page = page.evaluate(ANSWER_ALL, feed)
    path = os.path.join(web_dir, f"model_{variant}.tflite")
    edge = EdgePredictor(path, num_threads=1)
    agree = sum(
        p["answer"] == edge.predict(np.asarray(Image.open(os.path.join(data, q["image"]))),
                                    q["question"]).answer
        for p, q in zip(in_page, questions, strict=True)
    )  # fmt: skip
    page.close()
    return {
        "variant": variant,
        "questions": len(questions),
        "agreement": agree / len(questions),
        "page_answer_ms": float(np.median([p["ms"] for p in in_page])),
        "page_model_ms": float(np.median([p["model_ms"] for p in in_page])),
        "python_model_ms": median_ms(path),
        "mb": os.path.getsize(path) / 1e6,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--export", default="demo_out/export", help="a VQA export folder")
    parser.add_argument("--data", default="demo_out/data", help="its data (the test split)")
    parser.add_argument("--questions", type=int, default=0, help="at most (default: all)")
    parser.add_argument("--screenshot", help="a PNG of the page answering the first question")
    parser.add_argument("--out", default="benchmarks/results/web/web_latency.json")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    questions = [r for r in read_questions(args.data) if r["split"] == "test"]
    questions = questions[: args.questions or None]
    with tempfile.TemporaryDirectory() as root:
        web = os.path.join(root, "web")
        variants = export_web(args.export, web)
        os.symlink(os.path.abspath(args.data), os.path.join(root, "data"))
        server, url = serve(root)
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for variant in variants:
                rows.append(measure(browser, url, web, args.data, questions, variant))
                print(json.dumps(rows[-1]), flush=True)
            if args.screenshot:
                screenshot(browser, url, questions[0], args.screenshot)
            browser.close()
        server.shutdown()
    report = {"export": args.export, "machine": machine(), "chromium": CHROMIUM, "rows": rows}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(table(report))
    print(table(report))


def screenshot(browser, url, question, path):
    page = browser.new_page(viewport={"width": 560, "height": 760})
    page.goto(f"{url}/web/index.html?accelerator=wasm")
    page.wait_for_function("window.simmim && window.simmim.ready", timeout=120_000)
    # Twice: the timing shown is then of a warm model, as in the table.
    page.evaluate(
        """async ([u, q]) => {
            await window.simmim.answerUrl(u, q);
            await window.simmim.answerUrl(u, q);
        }""",
        [f"../data/{question['image']}", question["question"]],
    )
    page.screenshot(path=path, full_page=True)
    page.close()


def table(report):
    lines = [
        f"{report['export']} in headless Chromium (LiteRT.js, WebAssembly) and the Python "
        f"edge runtime, {report['machine']}.\n",
        "| variant | MB | questions | same answer as Python | page: one answer (ms) "
        "| page: model call (ms) | Python: model call, 1 thread (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['variant']} | {r['mb']:.2f} | {r['questions']} | {100 * r['agreement']:.2f}% "
            f"| {r['page_answer_ms']:.2f} | {r['page_model_ms']:.2f} | {r['python_model_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
