"""`simmim-tf data import-coco-captions`: COCO captions (Chen et al. 2015)
into `captions.jsonl` of a simmim_tf data folder.

Reads the published file as it is:
    annotations/captions_<subtype>.json
        {"images": [{"id", "file_name"}], "annotations": [{"image_id", "id", "caption"}]}
    COCO images: <image_dir>/<file_name>
"""

import os

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.import_writer import entries, load_json, write_imported
from simmim_tf.data.scene_import import coco_objects


def import_coco_captions(
    captions_json, image_dir, out_dir, split, image_size=224, bad=None, instances_json=None
):
    """Writes the captions of one COCO subset as `split`, and with
    `instances_json` (instances_<subset>.json) its images' objects as
    scenes; returns how many captions."""
    bad = bad if bad is not None else BadRecords()
    document = load_json(captions_json, "COCO captions file")
    files = {
        image["id"]: image["file_name"]
        for _, image in entries(document, "images", captions_json, bad, ("id", "file_name"))
    }
    records, sources = [], {}
    fields = ("image_id", "caption")
    for where, a in entries(document, "annotations", captions_json, bad, fields):
        if a["image_id"] not in files:
            bad(f"{where}image_id {a['image_id']} is not in 'images'")
            continue
        if not isinstance(a["caption"], str) or not a["caption"].strip():
            bad(f"{where}'caption' must be a non-empty string")
            continue
        name = os.path.splitext(files[a["image_id"]])[0]
        sources.setdefault(name, (os.path.join(image_dir, files[a["image_id"]]), where))
        records.append({"image": f"images/{name}.png", "caption": a["caption"].strip()})
    objects = coco_objects(instances_json, image_size, bad) if instances_json else None
    scenes = objects and {f"images/{os.path.splitext(f)[0]}.png": o for f, o in objects.values()}
    desc = f"COCO {split} images"
    return write_imported(out_dir, "captions.jsonl", split, records, sources, image_size, bad,
                          desc, scenes)  # fmt: skip
