"""Object annotations that public data sets ship, into `scenes.jsonl`, so
that a run on imported data trains the grounding and anchor losses.

    CLEVR v1.0   scenes/CLEVR_<split>_scenes.json: every object's
                 `pixel_coords` (x, y, depth), colour, shape, size (large,
                 small) and material (`data import-clevr --scenes`).
    COCO         annotations/instances_<split>.json: every instance's box and
                 category (`data import-vqav2 --instances`, `data
                 import-coco-captions --instances`).

Coordinates are moved onto the image the importer wrote (resized to a
square of `image_size`). An object keeps every attribute the data set
gives, under the data set's names (`size_name` for CLEVR's size: `size` is
a side in pixels here).
"""

from simmim_tf.data.import_writer import entries, load_json

# CLEVR v1.0's images and camera (its generator's defaults): 480×320 pixels,
# a 35 mm lens on a 32 mm-wide sensor, so 525 px of focal length.
CLEVR_WIDTH, CLEVR_HEIGHT = 480, 320
CLEVR_FOCAL_PX = 525.0
# The objects' half-sides in scene units (CLEVR's properties.json), and a
# margin for a cube seen corner-on or a cylinder's top: the box is an
# estimate from the depth, as CLEVR gives centres but no boxes.
CLEVR_HALF_SIDES = {"large": 0.7, "small": 0.35}
CLEVR_BOX_MARGIN = 1.25


def clevr_objects(scenes_json, image_size, bad):
    """{image file name: [object, ...]} of a CLEVR scenes file, on the
    imported image (`image_size` square; 0 or None: unresized). A scene
    with a malformed object goes to `bad` (a `BadRecords`)."""
    document = load_json(scenes_json, "CLEVR scenes file")
    sx = image_size / CLEVR_WIDTH if image_size else 1.0
    sy = image_size / CLEVR_HEIGHT if image_size else 1.0
    scenes = {}
    for where, scene in entries(
        document, "scenes", scenes_json, bad, ("image_filename", "objects")
    ):
        objects = []
        for i, o in enumerate(scene["objects"]):
            try:
                px, py, depth = o["pixel_coords"]
                side = 2 * CLEVR_HALF_SIDES[o["size"]] * CLEVR_FOCAL_PX / depth * CLEVR_BOX_MARGIN
                objects.append(
                    {
                        "x": px * sx,
                        "y": py * sy,
                        "width": side * sx,
                        "height": side * sy,
                        "color": o["color"],
                        "shape": o["shape"],
                        "size_name": o["size"],
                        "material": o["material"],
                    }
                )
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
                bad(
                    f"{where}objects[{i}]: not a CLEVR v1.0 object (needs pixel_coords [x, y, "
                    f"depth], color, shape, size large/small, material): {e!r}"
                )
                break
        else:
            scenes[scene["image_filename"]] = objects
    return scenes


def coco_objects(instances_json, image_size, bad):
    """{image id: (file name, [object, ...])} of a COCO instances file: each
    instance's box and category, on the imported image (`image_size`
    square; 0 or None: unresized). A malformed entry goes to `bad`."""
    document = load_json(instances_json, "COCO instances file")
    fields = ("id", "file_name", "width", "height")
    images = {i["id"]: i for _, i in entries(document, "images", instances_json, bad, fields)}
    categories = entries(document, "categories", instances_json, bad, ("id", "name"))
    names = {c["id"]: c["name"] for _, c in categories}
    scenes = {i: (image["file_name"], []) for i, image in images.items()}
    fields = ("image_id", "bbox", "category_id")
    for where, a in entries(document, "annotations", instances_json, bad, fields):
        if a["image_id"] not in images or a["category_id"] not in names:
            bad(
                f"{where}image_id {a['image_id']} or category_id {a['category_id']} is not in "
                "'images' or 'categories'"
            )
            continue
        if not (isinstance(a["bbox"], list) and len(a["bbox"]) == 4):
            bad(f"{where}'bbox' must be [x, y, width, height], got {a['bbox']!r:.40}")
            continue
        image = images[a["image_id"]]
        sx = image_size / image["width"] if image_size else 1.0
        sy = image_size / image["height"] if image_size else 1.0
        x, y, w, h = a["bbox"]
        scenes[a["image_id"]][1].append(
            {
                "x": (x + w / 2) * sx,
                "y": (y + h / 2) * sy,
                "width": w * sx,
                "height": h * sy,
                "category": names[a["category_id"]],
            }
        )
    return scenes
