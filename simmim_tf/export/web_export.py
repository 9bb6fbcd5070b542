"""Export folders → a static web page that answers questions about a
picture, captions it and searches pictures by text, in the browser with
LiteRT.js: `simmim-tf export --web OUT`.

The page (simmim_tf/web/: index.html, app.js, simmim.js) is copied as it
is, with the LiteRT.js runtime from simmim_tf/web/node_modules (`npm ci`
there installs it; `make` does), and each export's .tflite files and
sidecar; `web.json` says which parts and variants the page has. Nothing is
built and nothing is fetched when the page runs: serve the folder
(`python -m http.server`) and open it.
"""

import json
import os
import shutil

from simmim_tf.atomic_files import write_atomically
from simmim_tf.edge.edge_captioner import CAPTIONER_META
from simmim_tf.edge.edge_predictor import META_FILE
from simmim_tf.edge.edge_retriever import RETRIEVAL_META
from simmim_tf.errors import SimMIMInputError

WEB = os.path.join(os.path.dirname(os.path.dirname(__file__)), "web")
PAGE_FILES = ("index.html", "app.js", "simmim.js", "style.css")
# Variants the page offers, the first the default: WebGPU runs the float
# models; on WebAssembly float32 is also the faster (docs/export.md).
WEB_VARIANTS = ("float32", "float16", "int8", "dynamic", "int8_mixed")
LITERT = os.path.join(WEB, "node_modules", "@litertjs")
# LiteRT.js picks one of these by what the browser supports (relaxed SIMD
# or not); the threaded and JSPI builds need page options the app does not set.
LITERT_FILES = {
    "core/dist/index.js": "index.js",
    "wasm-utils/dist/index.js": "wasm-utils.js",
    "core/wasm/litert_wasm_internal.js": "litert_wasm_internal.js",
    "core/wasm/litert_wasm_internal.wasm": "litert_wasm_internal.wasm",
    "core/wasm/litert_wasm_compat_internal.js": "litert_wasm_compat_internal.js",
    "core/wasm/litert_wasm_compat_internal.wasm": "litert_wasm_compat_internal.wasm",
}


# What an export folder holds, by its sidecar: the part of the page it
# fills and the files of one variant.
PARTS = {
    META_FILE: ("vqa", ("model_{}.tflite",)),
    CAPTIONER_META: ("captioner", ("captioner_{}_encoder.tflite", "captioner_{}_decoder.tflite")),
    RETRIEVAL_META: ("retrieval", ("retrieval_{}_image.tflite", "retrieval_{}_text.tflite")),
}


def export_web(export_dir, out_dir):
    """Writes the page to `out_dir` with the export in `export_dir` (VQA,
    captioning or retrieval); the parts already in `out_dir` stay, so the
    page of several exports is written one export at a time. Returns the
    variants of this export the page offers."""
    sidecar = next((name for name in PARTS if os.path.isfile(os.path.join(export_dir, name))), None)
    if sidecar is None:
        raise SimMIMInputError(
            f"{export_dir}: no {', '.join(PARTS)}; --web needs a .tflite export (--format tflite)"
        )
    part, patterns = PARTS[sidecar]
    variants = [
        v for v in WEB_VARIANTS
        if all(os.path.isfile(os.path.join(export_dir, p.format(v))) for p in patterns)
    ]  # fmt: skip
    if not variants:
        raise SimMIMInputError(f"{export_dir}: no {patterns[0].format('<variant>')} for the page")
    missing = [name for name in LITERT_FILES if not os.path.isfile(os.path.join(LITERT, name))]
    if missing:
        raise SimMIMInputError(
            f"LiteRT.js is not installed ({os.path.join(LITERT, missing[0])} not found): run "
            f"`npm ci --prefix {WEB}` once (Node.js and npm; `make` does it)"
        )
    os.makedirs(os.path.join(out_dir, "litert"), exist_ok=True)
    for name in PAGE_FILES:
        shutil.copyfile(os.path.join(WEB, name), os.path.join(out_dir, name))
    for source, target in LITERT_FILES.items():
        shutil.copyfile(os.path.join(LITERT, source), os.path.join(out_dir, "litert", target))
    shutil.copyfile(os.path.join(export_dir, sidecar), os.path.join(out_dir, sidecar))
    for variant in variants:
        for pattern in patterns:
            name = pattern.format(variant)
            shutil.copyfile(os.path.join(export_dir, name), os.path.join(out_dir, name))
    config_path = os.path.join(out_dir, "web.json")
    config = {}
    if os.path.isfile(config_path):
        with open(config_path) as f:
            config = json.load(f)
    config[part] = variants
    write_atomically(config_path, json.dumps(config, indent=1))
    return variants
