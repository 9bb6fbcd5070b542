"""Moving shapes: short clips of 2-D objects that move, bounce off the walls
and are asked about, for video question answering.

Each clip is `num_frames` frames (default 8) of a 48×48 scene with four
objects, one of each of four of Sort-of-CLEVR's colours, each a square or a
circle. An object stands still or moves along one axis at a slow or a fast
speed; it bounces off a wall by reversing that speed (a "hit", an event at
the frame where it turns). Objects pass over each other (no collisions).
Every answer is computed from the tracks, which are written beside the
frames. Questions, in four families:

    descriptive  shape       what is the shape of the X object?
                 start_left  is the X object on the left at the start?
                 end_left    is the X object on the left at the end?
    motion       moving      is the X object moving?
                 direction   which way is the X object moving at the end? (left/right/up/down)
                 faster      is the X object faster than the Y object?
    events       hits        does the X object hit a wall?
                 hit_count   how many times does the X object hit a wall?
    order        first_hit   which object hits a wall first? (a colour)
                 hits_before does the X object hit a wall before the Y object?

Only "descriptive" can be answered from one frame; "end_left" from the last
one. A hit is the frame where an object turns back (never the last frame);
which object hits first is asked only where the first hits are two frames
or more apart. At 8 frames an object hits a wall at most once, so
`hit_count` is 0 or 1; longer clips (`num_frames`) give more. Output folder:

    clips/000000/00.png ... 07.png
    questions.jsonl  {"clip", "question", "answer", "family", "subtype", "split"}
    tracks.jsonl     {"clip", "split", "objects": [{"color", "shape", "size",
                      "speed", "x": [per frame], "y": [per frame], "hits": [frames]}]}
    captions.jsonl   {"clip", "caption", "split"}: what each object does

Coordinates are object centres in pixels, x rightwards and y downwards.
"""

import json
import os

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from simmim_tf.data.sort_of_clevr import COLORS, SHAPES

IMAGE_SIZE = 48
OBJECT_SIZE = 8
NUM_OBJECTS = 4
NUM_FRAMES = 8
SPEEDS = {"slow": 2.0, "fast": 5.0}  # pixels per frame
STILL_SHARE = 0.25  # of the objects, those that do not move
DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}

TEMPLATES = {
    ("descriptive", "shape"): "what is the shape of the {c} object?",
    ("descriptive", "start_left"): "is the {c} object on the left at the start?",
    ("descriptive", "end_left"): "is the {c} object on the left at the end?",
    ("motion", "moving"): "is the {c} object moving?",
    ("motion", "direction"): "which way is the {c} object moving at the end?",
    ("motion", "faster"): "is the {c} object faster than the {d} object?",
    ("events", "hits"): "does the {c} object hit a wall?",
    ("events", "hit_count"): "how many times does the {c} object hit a wall?",
    ("order", "first_hit"): "which object hits a wall first?",
    ("order", "hits_before"): "does the {c} object hit a wall before the {d} object?",
}


def sample_clip(rng, num_frames=NUM_FRAMES):
    """Four objects with their tracks: starting centres whose squares do not
    overlap, each still or moving along one axis, bouncing off the walls.
    A clip where an object turns at its last frame is drawn again: that
    turn shows only as a shorter last step, and the direction "at the end"
    would not be the last move's."""
    while True:
        objects = _sample_objects(rng, num_frames)
        if all(num_frames - 1 not in o["hits"] for o in objects):
            return objects


def _sample_objects(rng, num_frames):
    half = OBJECT_SIZE / 2
    starts = []
    while len(starts) < NUM_OBJECTS:
        x, y = rng.uniform(half, IMAGE_SIZE - half, size=2)
        if all(max(abs(x - cx), abs(y - cy)) > OBJECT_SIZE for cx, cy in starts):
            starts.append((x, y))
    colors = rng.choice(list(COLORS), NUM_OBJECTS, replace=False)
    objects = []
    for color, (x, y) in zip(colors, starts, strict=True):
        speed = 0.0 if rng.random() < STILL_SHARE else SPEEDS[rng.choice(list(SPEEDS))]
        direction = DIRECTIONS[rng.choice(list(DIRECTIONS))]
        velocity = [speed * direction[0], speed * direction[1]]
        objects.append(
            {
                "color": str(color),
                "shape": SHAPES[rng.integers(2)],
                "size": OBJECT_SIZE,
                "speed": speed,
                **_track((x, y), velocity, num_frames),
            }
        )
    return objects


def _track(start, velocity, num_frames):
    """Positions per frame, the frames where the object turned at a wall,
    and its velocity at the first and the last frame."""
    half, position, first, velocity = OBJECT_SIZE / 2, list(start), velocity, list(velocity)
    xs, ys, hits = [round(position[0], 2)], [round(position[1], 2)], []
    for frame in range(1, num_frames):
        for axis in (0, 1):
            position[axis] += velocity[axis]
            low, high = half, IMAGE_SIZE - half
            if position[axis] < low or position[axis] > high:
                edge = low if position[axis] < low else high
                position[axis] = 2 * edge - position[axis]  # reflected off the wall
                velocity[axis] = -velocity[axis]
                hits.append(frame)
        xs.append(round(position[0], 2))
        ys.append(round(position[1], 2))
    return {"x": xs, "y": ys, "hits": hits, "start_velocity": first, "end_velocity": velocity}


def render(objects, frame):
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    half = OBJECT_SIZE / 2
    for o in objects:
        x, y = o["x"][frame], o["y"][frame]
        box = [x - half, y - half, x + half - 1, y + half - 1]
        if o["shape"] == "square":
            draw.rectangle(box, fill=COLORS[o["color"]])
        else:
            draw.ellipse(box, fill=COLORS[o["color"]])
    return image


def answer(objects, subtype, color=None, other_color=None):
    """The answer to `subtype`'s question about the `color` object (and the
    `other_color` one), from the tracks; None where the question does not
    apply to this clip (no direction for a still object, a tie)."""
    by_color = {o["color"]: o for o in objects}
    o, d = by_color.get(color), by_color.get(other_color)
    yes_no = {True: "yes", False: "no"}
    if subtype == "shape":
        return o["shape"]
    if subtype in ("start_left", "end_left"):
        return yes_no[o["x"][0 if subtype == "start_left" else -1] < IMAGE_SIZE / 2]
    if subtype == "moving":
        return yes_no[o["speed"] > 0]
    if subtype == "direction":
        if o["speed"] == 0:
            return None
        vx, vy = o["end_velocity"]
        return next(name for name, (dx, dy) in DIRECTIONS.items() if (dx, dy) == _sign(vx, vy))
    if subtype == "faster":
        return None if o["speed"] == d["speed"] else yes_no[o["speed"] > d["speed"]]
    if subtype == "hits":
        return yes_no[bool(o["hits"])]
    if subtype == "hit_count":
        return str(len(o["hits"]))
    # Which hits first is asked only where the first hits are two frames or
    # more apart: one frame apart, the order hangs on sub-pixel steps.
    if subtype == "first_hit":
        firsts = sorted((x["hits"][0], x["color"]) for x in objects if x["hits"])
        if not firsts or (len(firsts) > 1 and firsts[1][0] - firsts[0][0] < 2):
            return None
        return firsts[0][1]
    if subtype == "hits_before":
        if not o["hits"]:
            return "no"
        if d["hits"] and abs(d["hits"][0] - o["hits"][0]) < 2:
            return None
        return yes_no[not d["hits"] or o["hits"][0] < d["hits"][0]]
    raise ValueError(f"unknown question subtype {subtype!r}")


def _sign(vx, vy):
    return (int(np.sign(vx)), int(np.sign(vy)))


def questions_for(objects, rng, per_subtype=2):
    """Up to `per_subtype` questions of each subtype. Each draws an answer
    first, uniformly among those some question of the subtype has in this
    clip, then a question with it: a model cannot lean on the commonest
    answer (most objects move; few hit a wall)."""
    colors = [o["color"] for o in objects]
    questions = []
    for (family, subtype), template in TEMPLATES.items():
        by_answer = {}
        for c in colors:
            for d in colors:
                value = answer(objects, subtype, c, d) if c != d else None
                if value is not None:
                    by_answer.setdefault(value, set()).add(template.format(c=c, d=d))
        for _ in range(per_subtype):
            if not by_answer:
                break
            value = sorted(by_answer)[rng.integers(len(by_answer))]
            texts = sorted(by_answer[value])
            text = texts[rng.integers(len(texts))]
            for group in by_answer.values():
                group.discard(text)
            by_answer = {k: v for k, v in by_answer.items() if v}
            questions.append(
                {"question": text, "answer": value, "family": family, "subtype": subtype}
            )
    return questions


def caption(objects):
    """What each object does, in the order of the tracks."""
    parts = []
    for o in objects:
        name = f"the {o['color']} {o['shape']}"
        if o["speed"] == 0:
            parts.append(f"{name} stays still")
            continue
        start = next(
            n for n, (dx, dy) in DIRECTIONS.items() if (dx, dy) == _sign(*o["start_velocity"])
        )
        speed = "fast" if o["speed"] == SPEEDS["fast"] else "slowly"
        hits = {0: "", 1: " and hits a wall"}.get(
            len(o["hits"]), f" and hits walls {len(o['hits'])} times"
        )
        parts.append(f"{name} moves {start} {speed}{hits}")
    return "; ".join(parts)


def generate(out_dir, num_clips=3000, seed=0, num_test=None, num_frames=NUM_FRAMES, progress=True):
    """Writes a moving-shapes data set; the last `num_test` clips (default a
    tenth, at most 200) are the test split. The same arguments give
    byte-identical files. Returns the number of questions written."""
    if num_clips < 1 or num_frames < 2:
        raise ValueError(f"need num_clips >= 1 and num_frames >= 2; got {num_clips}, {num_frames}")
    num_test = min(200, num_clips // 10) if num_test is None else num_test
    width = max(2, len(str(num_frames - 1)))  # frame files sort in frame order
    rng = np.random.default_rng(seed)
    names = ("questions.jsonl", "tracks.jsonl", "captions.jsonl")
    # Written under temporary names and renamed at the end: an interrupted
    # run never leaves a folder that looks complete.
    tmp = [os.path.join(out_dir, n) + ".tmp" for n in names]
    os.makedirs(out_dir, exist_ok=True)
    count = 0
    with open(tmp[0], "w") as qf, open(tmp[1], "w") as tf, open(tmp[2], "w") as cf:
        for i in tqdm(range(num_clips), desc="moving-shapes", unit="clip", disable=not progress):
            split = "test" if i >= num_clips - num_test else "train"
            objects = sample_clip(rng, num_frames)
            clip = f"clips/{i:06d}"
            folder = os.path.join(out_dir, clip)
            os.makedirs(folder, exist_ok=True)
            for stale in os.listdir(folder):  # frames of an earlier run into OUT
                os.remove(os.path.join(folder, stale))
            for frame in range(num_frames):
                render(objects, frame).save(os.path.join(folder, f"{frame:0{width}d}.png"))
            tracks = [{k: v for k, v in o.items() if "velocity" not in k} for o in objects]
            tf.write(json.dumps({"clip": clip, "split": split, "objects": tracks}) + "\n")
            cf.write(json.dumps({"clip": clip, "caption": caption(objects), "split": split}) + "\n")
            for q in questions_for(objects, rng):
                qf.write(json.dumps({"clip": clip, **q, "split": split}) + "\n")
                count += 1
    for path, name in zip(tmp, names, strict=True):
        os.replace(path, os.path.join(out_dir, name))
    return count
