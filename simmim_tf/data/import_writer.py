"""What every importer shares: copying images into `images/` (RGB, resized)
in parallel, and writing one split of a JSON-lines file without touching
the other splits already there."""

import concurrent.futures
import json
import os

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from simmim_tf.errors import SimMIMInputError


def copy_images(sources, out_dir, image_size, bad, desc="images"):
    """Copies each source image to OUT/images/<name>.png as RGB, `image_size` square.

    sources: {name: (source path, where)}; `where` ("file:line: ") names the
    record that needs the image, for the message of a missing or corrupt one.
    Returns the set of names written; the others went to `bad`.
    """
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)

    def copy(name):
        src, _ = sources[name]
        dst = os.path.join(out_dir, "images", name + ".png")
        if os.path.isfile(dst):  # an interrupted import resumes
            return name, None
        try:
            with Image.open(src) as image:
                image = image.convert("RGB")  # CLEVR's PNGs are RGBA, some COCO JPEGs gray
                if image_size:
                    image = image.resize((image_size, image_size), Image.BILINEAR)
                image.save(dst + ".tmp", format="PNG")
            os.replace(dst + ".tmp", dst)
            return name, None
        except FileNotFoundError:
            return name, f"image not found: {src}"
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            return name, f"{src}: not a readable image ({e})"

    written = set()
    with concurrent.futures.ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        results = pool.map(copy, sorted(sources))
        for name, error in tqdm(results, total=len(sources), desc=desc, unit="img"):
            if error is None:
                written.add(name)
            else:
                bad(f"{sources[name][1]}{error}")
    return written


def write_imported(out_dir, file_name, split, records, sources, image_size, bad, desc, scenes=None):
    """Copies the images of `sources`, then writes the records whose image was
    copied (the others went to `bad`) as `split` of OUT/file_name, and the
    `scenes` ({"images/NAME.png": objects}, if given) of those images.
    Returns the number of records written."""
    written = copy_images(sources, out_dir, image_size, bad, desc=desc)
    records = [r for r in records if r["image"][len("images/") : -len(".png")] in written]
    count = write_split(out_dir, file_name, split, records)
    if scenes is not None:
        write_scenes(out_dir, split, scenes)
    return count


def write_scenes(out_dir, split, objects_by_image):
    """Writes the scenes of `split` ({"images/NAME.png": objects}) for the
    images the importer wrote, and says how many; returns (scenes, objects)."""
    records = [
        {"image": path, "objects": objects}
        for path, objects in sorted(objects_by_image.items())
        if os.path.isfile(os.path.join(out_dir, path))
    ]
    if not records:
        raise SimMIMInputError(
            f"no scene matches an imported image of split {split!r}: is the annotations "
            "file the same subset as the questions?"
        )
    write_split(out_dir, "scenes.jsonl", split, records)
    objects = sum(len(r["objects"]) for r in records)
    print(f"wrote {len(records)} scenes with {objects} objects to {out_dir}/scenes.jsonl")
    return len(records), objects


def write_split(out_dir, file_name, split, records):
    """Replaces the records of `split` in OUT/file_name, keeping other splits."""
    path = os.path.join(out_dir, file_name)
    kept = []
    if os.path.isfile(path):
        with open(path) as f:
            kept = [line for line in f if line.strip() and json.loads(line).get("split") != split]
    if not records:
        raise SimMIMInputError(f"nothing to write to {path} for split {split!r}")
    with open(path + ".tmp", "w") as f:
        f.writelines(kept)
        for record in records:
            f.write(json.dumps({**record, "split": split}) + "\n")
    os.replace(path + ".tmp", path)
    return len(records)


def load_json(path, what):
    """A whole JSON file, with a clear error for a missing or broken one."""
    if not os.path.isfile(path):
        raise SimMIMInputError(f"{path}: not found ({what})")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise SimMIMInputError(
            f"{path}: not valid JSON at line {e.lineno}, column {e.colno} ({e.msg})"
        ) from None


def entries(document, key, path, bad, fields):
    """(where, entry) for each entry of document[key] that has all `fields`.

    where is "file: key[i]: "; an entry without them goes to `bad`.
    """
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise SimMIMInputError(f"{path}: expected a JSON object with a list {key!r}")
    for i, entry in enumerate(document[key]):
        where = f"{path}: {key}[{i}]: "
        missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
        if missing:
            bad(f"{where}missing field(s) {', '.join(missing)}")
            continue
        yield where, entry
