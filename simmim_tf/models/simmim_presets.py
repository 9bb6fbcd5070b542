"""Named architecture configurations of SimMIM.

Task-dependent sizes (vocabulary, answers, image size, question length) are
not part of a preset: they come from the data and are passed to
`SimMIMVQA.from_preset`.
"""

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
        # No image layers: on 2 CPU cores they cost a quarter of the
        # throughput and, at equal time up to 30 minutes, the model without
        # them is ahead (docs/reasoning.md, "Ablations").
        "image_layers": 0,
        # Anchored relational attention, its anchor trained on the named
        # object (RunConfig.anchor_weight): +12.8 relational points at 5
        # minutes (docs/reasoning.md, "Anchor supervision").
        "use_relational_attention": True,
        # A second anchor on the second object a question names: CLEVR-2D
        # 92.0% at 60 minutes (spatial 83.3%); Sort-of-CLEVR unchanged at 30
        # minutes (97.2% relational) (docs/reasoning.md, "two anchors" sections).
        "relational_anchors": 2,
        # The features under both anchors read as well as their offset:
        # CLEVR-2D's "is the A the same colour as the B?" at 99.9% instead
        # of 76.2%, and every CLEVR-2D family 20 points above the
        # question-only model in both 60-minute runs with Adam's beta_2 0.95
        # (docs/reasoning.md, "the anchors read").
        "relational_read_anchors": True,
        # Region positions moved to their object's centre (trained by the
        # grounding loss's offset target; at the region centres without
        # scenes), and the relation heads' offsets in region sides:
        # Sort-of-CLEVR closest 97.4/98.5% at 30 minutes instead of
        # 88.0/90.8% (docs/reasoning.md, "refined positions and offsets in
        # region sides").
        "relational_refine_positions": True,
        "relational_offsets_in_regions": True,
    },
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
    },
}
