"""Named architecture configurations of SimMIM.

Task-dependent sizes (vocabulary, answers, image size, question length) are
not part of a preset: they come from the data and are passed to
`SimMIMVQA.from_preset`. What each choice measured is in docs/reasoning.md.
"""

from simmim_tf.models.simmim_backbone import current_arguments

# Anchored relational attention, in every preset: two anchors (the objects a
# question names), the features under them read, region positions refined
# to their object's centre, and offsets in region sides.
RELATIONAL = {
    "num_anchors": 2,
    "read_anchors": True,
    "refine_positions": True,
    "offsets_in_regions": True,
}

SIMMIM_PRESETS = {
    # Trains on 2 CPU cores in minutes: 10×10 regions for 75×75 images.
    "tiny": {
        "hidden_dim": 64,
        "num_heads": 4,
        "question_layers": 1,
        "memory_slots": 8,
        "memory_layers": 2,
        "intermediate_dim": 128,
        "patch_size": 8,
        "stem": "conv",
        "dropout": 0.0,
        # No image layers: on CPU the model without them learns more in
        # the same time (docs/reasoning.md, "Image layers and the grounding loss").
        "image_layers": 0,
        "relational": RELATIONAL,
    },
    # For one GPU, or a CPU with time to spare.
    "small": {
        "hidden_dim": 128,
        "num_heads": 4,
        "question_layers": 2,
        "memory_slots": 16,
        "memory_layers": 3,
        "intermediate_dim": 256,
        "patch_size": 8,
        "stem": "conv",
        "dropout": 0.1,
        "image_layers": 4,
        "relational": RELATIONAL,
    },
    # For GPUs: ViT-S-like width.
    "base": {
        "hidden_dim": 384,
        "num_heads": 6,
        "question_layers": 4,
        "memory_slots": 32,
        "memory_layers": 4,
        "intermediate_dim": 1536,
        "patch_size": 8,
        "stem": "conv",
        "dropout": 0.1,
        "image_layers": 6,
        "relational": RELATIONAL,
    },
}


def preset_arguments(preset, overrides=None):
    """The backbone arguments of named architecture `preset` with
    `overrides`: a `relational` dict is merged into the preset's
    (`relational={"gated_between": True}`), None removes the relational
    attention, a keras-hub image backbone as `stem` brings its own stride;
    arguments of earlier versions (`relational_gated_between=True`) are
    translated."""
    overrides = current_arguments(overrides or {})
    arguments = {**SIMMIM_PRESETS[preset], **overrides}
    if not isinstance(arguments["stem"], str) and "patch_size" not in overrides:
        arguments["patch_size"] = None  # an image backbone's own stride
    if overrides.get("relational") is not None and SIMMIM_PRESETS[preset].get("relational"):
        arguments["relational"] = {
            **SIMMIM_PRESETS[preset]["relational"],
            **overrides["relational"],
        }
    return arguments
