"""Image–text retrieval on the device: the two exported towers, and an index
of a folder of images searched by text. NumPy and ai-edge-litert only.

An index folder holds:
    embeddings.npy   float32 (images, D), unit rows, in the order of
    images.json      the image paths (absolute)
    index.json       the model id, the export folder and variant it was built with
"""

import json
import os

import numpy as np

from simmim_tf.atomic_files import write_atomically
from simmim_tf.edge.edge_predictor import check_image, read_sidecar, signature_runner
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.image_loading import image_files, load_image
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer, check_known_words

try:  # a progress bar where tqdm is installed; the device needs only the three above
    from tqdm import tqdm
except ModuleNotFoundError:  # pragma: no cover - the edge-only environment

    def tqdm(items, **_):
        return items


RETRIEVAL_META = "retrieval_meta.json"
INDEX_FILES = ("embeddings.npy", "images.json", "index.json")


def tower_file(variant, tower):
    """File name of one tower of one variant: retrieval_<variant>_<tower>.tflite."""
    return f"retrieval_{variant}_{tower}.tflite"


def split_tower_path(model_path):
    """(export folder, variant) of a tower file's path (either tower)."""
    name = os.path.basename(model_path)
    for tower in ("image", "text"):
        suffix = f"_{tower}.tflite"
        if name.startswith("retrieval_") and name.endswith(suffix):
            return os.path.dirname(model_path) or ".", name[len("retrieval_") : -len(suffix)]
    raise SimMIMInputError(
        f"{model_path}: not a retrieval tower (retrieval_VARIANT_image.tflite or "
        "retrieval_VARIANT_text.tflite, written by `simmim-tf export` of a retrieval run)"
    )


class EdgeRetriever:
    """Both towers of one exported variant, and their sidecar.

    Args:
        export_dir: str. Folder written by `simmim-tf export` of a retrieval run.
        variant: str. float32, float16, dynamic or int8.
        num_threads: int or None. CPU threads per interpreter.

    Example:
    >>> retriever = EdgeRetriever("export", "float32")
    >>> scores = retriever.embed_images(images) @ retriever.embed_text("a red circle")
    """

    def __init__(self, export_dir, variant="float32", num_threads=None):
        meta = read_sidecar(export_dir, RETRIEVAL_META, "retrieval", variant)
        self.export_dir = os.path.abspath(export_dir)
        self.variant = variant
        self.model_id = meta["model_id"]
        self.image_size = meta["image_size"]
        self.tokenizer = QuestionTokenizer(**meta["tokenizer"])
        paths = {t: os.path.join(export_dir, tower_file(variant, t)) for t in ("image", "text")}
        self._image = signature_runner(paths["image"], num_threads)
        self._text = signature_runner(paths["text"], num_threads)

    @classmethod
    def from_tower_path(cls, model_path, num_threads=None):
        """The retriever whose tower `model_path` is (either tower's file)."""
        return cls(*split_tower_path(model_path), num_threads=num_threads)

    def embed_image(self, image):
        """One uint8 image (any size, 1 to 4 channels) → float32 (D,), unit length."""
        pixels = check_image(image, self.image_size)[None].astype(np.float32)
        return self._image(images=pixels)["embedding"][0]

    def embed_images(self, images, progress=False):
        """float32 (n, D) of a list or array of images."""
        images = tqdm(images, desc="embedding images", unit="image") if progress else images
        return np.stack([self.embed_image(image) for image in images])

    def embed_text(self, text):
        """One caption or query → float32 (D,); a text without words is refused."""
        ids, _ = self.tokenizer.encode(text)
        return self._text(token_ids=ids[None])["embedding"][0]


class ImageIndex:
    """Embeddings of a folder of images, searched by text, nearest first.

    Example:
    >>> retriever = EdgeRetriever("export")
    >>> ImageIndex.build(retriever, "photos/", "photos_index")
    >>> ImageIndex("photos_index", retriever).search("a large red circle", top_k=5)
    [('photos/0042.png', 0.61), ...]
    """

    def __init__(self, index_dir, retriever):
        for name in INDEX_FILES:
            if not os.path.isfile(os.path.join(index_dir, name)):
                raise SimMIMInputError(
                    f"{index_dir}: not an image index (no {name}); build one with `simmim-tf index`"
                )
        with open(os.path.join(index_dir, "index.json")) as f:
            info = json.load(f)
        if info["model_id"] != retriever.model_id:
            raise SimMIMInputError(
                f"{index_dir}: built by model {info['model_id']} ({info['export_dir']}), but the "
                f"text tower is model {retriever.model_id} ({retriever.export_dir}); rebuild "
                "the index with this model or search with that one"
            )
        with open(os.path.join(index_dir, "images.json")) as f:
            self.paths = json.load(f)
        self.embeddings = np.load(os.path.join(index_dir, "embeddings.npy"))
        if len(self.paths) != len(self.embeddings) or len(self.paths) != info["images"]:
            raise SimMIMInputError(
                f"{index_dir}: {len(self.paths)} image paths, {len(self.embeddings)} embeddings "
                f"and {info['images']} images recorded; rebuild the index"
            )
        self.retriever = retriever
        self.info = info

    @staticmethod
    def build(retriever, images_dir, index_dir, skip_bad_images=False):
        """Embeds every PNG or JPEG under `images_dir` and writes `index_dir`.
        An unreadable file stops with its name unless `skip_bad_images` (then
        counted and listed in INDEX/skipped_images.txt). Returns the number
        of images indexed."""
        embeddings, paths, skipped = [], [], []
        for path in tqdm(image_files(images_dir), desc="indexing images", unit="image"):
            try:
                image = load_image(path)
            except SimMIMInputError as e:
                if not skip_bad_images:
                    raise SimMIMInputError(
                        f"{e} (--skip-bad-images leaves such files out)"
                    ) from None
                skipped.append(f"{path}: {e}")
                continue
            embeddings.append(retriever.embed_image(image))
            paths.append(os.path.abspath(path))
        if not paths:
            raise SimMIMInputError(f"{images_dir}: no readable image to index")
        os.makedirs(index_dir, exist_ok=True)
        # index.json goes first and comes back last: a rebuild killed half
        # way leaves a folder that is refused, never one that mixes two builds.
        if os.path.exists(os.path.join(index_dir, "index.json")):
            os.remove(os.path.join(index_dir, "index.json"))
        with open(os.path.join(index_dir, "embeddings.npy.tmp"), "wb") as f:
            np.save(f, np.stack(embeddings).astype(np.float32))
        os.replace(
            os.path.join(index_dir, "embeddings.npy.tmp"), os.path.join(index_dir, "embeddings.npy")
        )
        write_atomically(os.path.join(index_dir, "images.json"), json.dumps(paths, indent=0))
        skipped_path = os.path.join(index_dir, "skipped_images.txt")
        if skipped:
            with open(skipped_path, "w") as f:
                f.write("\n".join(skipped) + "\n")
            print(f"skipped {len(skipped)} unreadable image(s); list: {skipped_path}")
        elif os.path.exists(skipped_path):
            os.remove(skipped_path)
        info = {
            "model_id": retriever.model_id,
            "export_dir": retriever.export_dir,
            "variant": retriever.variant,
            "images_dir": os.path.abspath(images_dir),
            "images": len(paths),
            "skipped_images": len(skipped),
        }
        write_atomically(os.path.join(index_dir, "index.json"), json.dumps(info, indent=1))
        return len(paths)

    def search(self, query, top_k=5):
        """[(image path, cosine similarity)], best first. A query with no word
        the model knows is refused, not ranked."""
        if top_k < 1:
            raise SimMIMInputError(f"top_k must be at least 1; got {top_k}")
        check_known_words(self.retriever.tokenizer, query)
        scores = self.embeddings @ self.retriever.embed_text(query)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [(self.paths[i], float(scores[i])) for i in order]


def evaluate_edge_retriever(model_path, data_dir, split="test"):
    """Recall@1/5/10 both ways of the exported towers that `model_path`
    names (either tower's file), on `split`'s captions."""
    from simmim_tf.data.caption_dataset import load_captions
    from simmim_tf.retrieval_recall import recall_at_k

    retriever = EdgeRetriever.from_tower_path(model_path)
    captions = load_captions(data_dir, split, image_size=retriever.image_size)
    result = recall_at_k(
        retriever.embed_images(captions.images),
        np.stack([retriever.embed_text(c) for c in captions.captions]),
        captions.relevance(),
    )
    result.update(images=len(captions.images), captions=len(captions))
    return result
