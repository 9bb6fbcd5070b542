"""Which part of SimMIM earns its place: the full model against today's
architecture and against the model with one part removed, each trained for
the same wall-clock budget on the same data.

    python -m benchmarks.ablations --data benchmarks/data/sort_of_clevr_10000 --minutes 5
    python -m benchmarks.ablations --data benchmarks/data/clevr2d --minutes 5 \\
        --out benchmarks/results/ablations_clevr2d.json

Variants (`VARIANTS`), on the tiny preset with every part switched on
(`FULL`: two image layers, which the preset itself no longer has, and no
relational attention, which it now has):
    full                 image layers with coordinates, visual and textual
                         attention, semantic memory, grounding loss
    before               the architecture before image layers (regions never attend
                         to each other; position only at the stem), no grounding loss,
                         trained with the same recipe
    no_image_attention   image_layers=0 (grounding loss kept)
    no_coordinates       no coordinate features in the image layers
    no_visual_attention  the words do not attend over the regions
    no_textual_attention the regions do not attend over the words
    no_semantic_memory   mean region + mean word instead of the memory's slots
    no_grounding         no grounding loss
With `--base VARIANT` every variant starts from that variant's changes
(`--base two_anchors --variants two_anchors,no_semantic_memory,...`: the
model with two anchors against itself with one part removed);
`no_relational_attention`, `no_anchor_loss` and `no_read_anchors` then
remove those parts.
Alternatives tried (not in the default list):
    one_question_per_image  batches of (nearly) 64 different images, as plain
                         `fit` on the model would give: the cost of image grouping
    ten_questions_per_image  image groups of 10 questions
    relative_bias        a learned relative position bias in the image layers
    sequential_fusion    textual attention reads the words after visual attention
    three_image_layers   one more image layer
    no_offset            grounding without the object-centre offset
    relational           RelationalAttention added (anchor, then offsets), its
                         anchor learnt from the answers alone
    relational_no_image_layers  the same without image layers
    relational_anchor_colour  RelationalAttention without image layers, its
                         anchor trained on the object named by a unique colour
                         (AnchorLoss): the tiny preset and recipe of 2026-11-30
    relational_anchor    the same, the named object found by its description
                         (colour, shape, size; simmim_tf.data.anchor_targets)
    relational_offsets   the same, and each relational head reads its regions'
                         offset from the anchor
    two_anchors          relational_anchor with a second anchor, trained on the
                         second object the question names, and the offset
                         between the two anchors among the features
    refined_positions    relational_anchor with region positions refined by a
                         predicted offset to their object's centre (trained by
                         the grounding loss's offset target)
    two_anchors_refined  two_anchors with refined positions
    two_anchors_read     two_anchors, and the features under each anchor and
                         their product join the output (compare questions)
    gated_between        offsets_in_regions, and the offset between the two
                         anchors projected on directions the question picks

Writes a JSON, a markdown table per question type, and a learning-curve PNG.
"""

import argparse
import os

from benchmarks.budgeted_training import (
    Data,
    new_report,
    per_type_table,
    remove_partial,
    summary,
    train_simmim,
    write_report,
)
from benchmarks.label_efficiency import pretrain
from simmim_tf.models.simmim_masked_image_pretrainer import pretrained_image_config
from simmim_tf.training.training_data import has_scenes

# Every part on: the tiny preset with two image layers (the preset has none
# since this ablation; docs/reasoning.md).
# Relational attention off: the variants measured before it joined the tiny
# preset keep their meaning; the "relational*" alternatives switch it on.
FULL = {
    "image_layers": 2,
    "use_relational_attention": False,
    "relational_offsets": False,
    "relational_anchors": 1,
}
# name: (backbone overrides on top of FULL, recipe overrides)
VARIANTS = {
    "full": ({}, {}),
    "before": ({"image_layers": 0}, {"grounding_weight": 0.0}),
    "no_image_attention": ({"image_layers": 0}, {}),
    "no_coordinates": ({"image_coordinates": False}, {}),
    "no_visual_attention": ({"use_visual_attention": False}, {}),
    "no_textual_attention": ({"use_textual_attention": False}, {}),
    "no_semantic_memory": ({"use_semantic_memory": False}, {}),
    "no_grounding": ({}, {"grounding_weight": 0.0}),
}
ALTERNATIVES = {
    "one_question_per_image": ({}, {"questions_per_image": 1}),
    "ten_questions_per_image": ({}, {"questions_per_image": 10}),
    "relative_bias": ({"image_relative_bias": True}, {}),
    "sequential_fusion": ({"fusion": "sequential"}, {}),
    "three_image_layers": ({"image_layers": 3}, {}),
    "no_offset": ({}, {"offset_weight": 0.0}),
    "relational": ({"use_relational_attention": True}, {"anchor_weight": 0.0}),
    "relational_no_image_layers": (
        {"use_relational_attention": True, "image_layers": 0},
        {"anchor_weight": 0.0},
    ),
    # The anchor of RelationalAttention trained to land on the named object
    # (simmim_tf.data.anchor_targets), on the tiny preset (no image layers).
    "relational_anchor_colour": (
        {"use_relational_attention": True, "image_layers": 0},
        {"anchor_weight": 1.0, "anchor_named_by": "colour"},
    ),
    "relational_anchor": (
        {"use_relational_attention": True, "image_layers": 0},
        {"anchor_weight": 1.0, "anchor_named_by": "description"},
    ),
    "relational_offsets": (
        {"use_relational_attention": True, "image_layers": 0, "relational_offsets": True},
        {"anchor_weight": 1.0, "anchor_named_by": "description"},
    ),
    "two_anchors": (
        {"use_relational_attention": True, "image_layers": 0, "relational_anchors": 2},
        {"anchor_weight": 1.0, "anchor_named_by": "description"},
    ),
    # Region positions refined by a predicted offset to their object's
    # centre, trained by the grounding loss's offset target.
    "refined_positions": (
        {"use_relational_attention": True, "image_layers": 0, "relational_refine_positions": True},
        {"anchor_weight": 1.0, "anchor_named_by": "description"},
    ),
    "two_anchors_refined": (
        {
            "use_relational_attention": True,
            "image_layers": 0,
            "relational_anchors": 2,
            "relational_refine_positions": True,
        },
        {"anchor_weight": 1.0, "anchor_named_by": "description"},
    ),
    # Parts of the relational attention, for ablations with --base.
    "no_relational_attention": ({"use_relational_attention": False}, {"anchor_weight": 0.0}),
    "no_anchor_loss": ({}, {"anchor_weight": 0.0}),
    "no_read_anchors": ({"relational_read_anchors": False}, {}),
    "two_anchors_read": (
        {
            "use_relational_attention": True,
            "image_layers": 0,
            "relational_anchors": 2,
            "relational_read_anchors": True,
        },
        {"anchor_weight": 1.0, "anchor_named_by": "description"},
    ),
    # The tiny preset (anchors read) with refined region positions, their
    # prediction started at zero (since 2026-12-02; "refined_positions"
    # above was measured with a random start).
    "two_anchors_read_refined": (
        {
            "use_relational_attention": True,
            "image_layers": 0,
            "relational_anchors": 2,
            "relational_read_anchors": True,
            "relational_refine_positions": True,
        },
        {"anchor_weight": 1.0, "anchor_named_by": "description"},
    ),
    # The relational scores' offsets in region sides (the score MLP starting
    # at zero), with --base two_anchors_read or two_anchors_read_refined.
    "offsets_in_regions": ({"relational_offsets_in_regions": True}, {}),
    # and the offset between the two anchors, in region sides, projected on
    # directions the question picks (left/right/above/below as one sign).
    "gated_between": (
        {"relational_offsets_in_regions": True, "relational_gated_between": True},
        {},
    ),
    # gated_between where there are no scenes: the score MLP's offsets in
    # image sides (the library's choice without scenes), the offset between
    # the anchors projected on the question's directions.
    "gated_between_image_sides": (
        {"relational_offsets_in_regions": False, "relational_gated_between": True},
        {},
    ),
    # The refined positions as the library trains them since the
    # without-scenes study: by the answers' gradient where there is no
    # offset target (--without-scenes), by the target alone where there
    # is; with --base two_anchors_read_refined, the tiny preset.
    "positions_from_answers": ({"relational_offsets_in_regions": True}, {}),
    # ... with the relation scores' offsets in image sides: the score MLP
    # starts random, so the answers' gradient reaches the positions through
    # it from the first step (in region sides it starts at zero).
    "positions_from_answers_image_sides": ({"relational_offsets_in_regions": False}, {}),
    # ... and as before it: the answers' gradient stopped everywhere, so
    # without scenes they stay at the region centres.
    "positions_from_offsets_only": (
        {"relational_offsets_in_regions": True},
        {"swap": "positions_from_offsets_only"},
    ),
    # The architecture of --pretrain-minutes' arm from scratch: the library's
    # model without scenes with two image layers (the control of
    # results/without_scenes row 16).
    "image_layers_image_sides": ({"relational_offsets_in_regions": False, "image_layers": 2}, {}),
    # Measured with the stem's batch-norm moving averages, as before the
    # recipe recomputed them before every measurement (precise BN).
    "moving_batch_norm": ({}, {"recompute_batch_norm": False}),
    # Without scenes: the anchors' attention entropy as a loss (anchors that
    # commit to one region), offsets in image sides as the library has them
    # there (budgeted_training.AnchorEntropyTraining).
    "anchor_entropy_image_sides": (
        {"relational_offsets_in_regions": False},
        {"swap": "anchor_entropy"},
    ),
    # Without scenes: the relation heads also score each region by its
    # likeness to what lies under the first anchor, so that the named
    # object's own regions can be passed over ("closest"); offsets in image
    # sides as the library has them there (budgeted_training.AnchorLikeness).
    "anchor_likeness_image_sides": (
        {"relational_offsets_in_regions": False},
        {"swap": "anchor_likeness"},
    ),
    # Recipe: Adam's second moment over ~20 steps instead of ~1,000, so that
    # a sudden rise of the gradients does not meet a stale, small estimate
    # (the usual cure for loss spikes in transformer training); with --base.
    # The recipe's own value since 2026-12-01 (RECIPE).
    "beta_2_0.95": ({}, {"beta_2": 0.95}),
    # The recipe before 2026-12-01 evening (Keras's default), for comparisons.
    "beta_2_0.999": ({}, {"beta_2": 0.999}),
    # The gradients' joint norm clipped to 1 (GPT's and ViT's recipe) instead
    # of each weight's, against the transient collapses of 2026-12-02.
    "global_clipnorm": ({}, {"clipnorm": None, "global_clipnorm": 1.0}),
}
ALL = {**VARIANTS, **ALTERNATIVES}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        default="benchmarks/data/sort_of_clevr_10000",
        help="a data folder (python -m simmim_tf.cli data ...); without scenes.jsonl the "
        "grounding and anchor losses are off",
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per variant")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, of: {', '.join(ALL)} (default: {', '.join(VARIANTS)})",
    )
    parser.add_argument("--preset", default="tiny", help="architecture the variants change")
    parser.add_argument(
        "--base",
        default="",
        help="a variant whose changes every variant starts from (e.g. two_anchors: then "
        "no_semantic_memory is two_anchors without the memory); default: FULL alone",
    )
    parser.add_argument("--max-sequence-length", type=int, default=24, help="question tokens")
    parser.add_argument(
        "--without-scenes",
        action="store_true",
        help="train as on data without scenes.jsonl: no grounding or anchor loss (a folder "
        "without scenes.jsonl trains so anyway)",
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.0,
        help="share of the training images held out (the same for every seed): the "
        "checkpoints are measured on them, the test split once at the end (default: 0, "
        "checkpoints on the test split)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="initialisation and shuffling seed; a second seed is a second run for the variance",
    )
    parser.add_argument(
        "--pretrain-minutes",
        type=float,
        default=0.0,
        help="first pretrain the image encoder (masked-image modelling, two image layers) "
        "on the training images for this long, with no labels, and start every variant "
        "from it; --minutes is then the VQA budget after it (default: 0, from scratch)",
    )
    parser.add_argument(
        "--save-models",
        default="",
        help="a folder to write each trained variant to (FOLDER/VARIANT, a run that "
        "`simmim-tf export` reads); default: not written",
    )
    parser.add_argument(
        "--out",
        default="benchmarks/results/ablations_sort_of_clevr.json",
        help="JSON to write; the .md table and .png curves go beside it",
    )
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = sorted(set(variants + ([args.base] if args.base else [])) - set(ALL))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(ALL)}")

    data = Data(args.data, args.max_sequence_length, args.validation_fraction)
    report = new_report(f"Ablations, {os.path.basename(args.data)}", data, args.minutes)
    report["preset"] = args.preset
    base_overrides, base_recipe = ALL[args.base] if args.base else ({}, {})
    report["base"] = args.base or "FULL"
    report["seed"] = args.seed
    report["without_scenes"] = args.without_scenes or not has_scenes(args.data)
    report["validation_questions"] = len(data.validation) if data.validation else 0
    pretrained, pretrained_overrides = None, {}
    if args.pretrain_minutes:
        pretrained = os.path.join("benchmarks", "data", "pretrained_" + os.path.basename(
            os.path.splitext(args.out)[0]))  # fmt: skip
        report["pretraining"] = pretrain(
            data, args.pretrain_minutes, pretrained,
            os.path.splitext(args.out)[0] + "_reconstructions.png", image_layers=2, seed=args.seed,
        )  # fmt: skip
        pretrained_overrides = pretrained_image_config(pretrained)
        pretrained_overrides.pop("image_size")
    for name in variants:
        overrides, recipe = ALL[name]
        overrides, recipe = {**base_overrides, **overrides}, {**base_recipe, **recipe}
        recipe["without_scenes"] = args.without_scenes
        print(f"== {name}: {overrides} {recipe}", flush=True)
        result = train_simmim(
            data,
            args.minutes,
            args.preset,
            {**FULL, **overrides, **pretrained_overrides},
            recipe,
            seed=args.seed,
            init_from=pretrained,
            save_to=os.path.join(args.save_models, name) if args.save_models else None,
        )
        report["results"].append({"model": name, **result})
        print(f"{name}: {summary(result['accuracy'])}", flush=True)
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        write_report(report, args.out + ".partial.json", table(report))

    write_report(report, args.out, table(report))
    remove_partial(args.out)


def table(report):
    return (
        f"{report['title']}: {report['minutes_per_model']} min of training per variant, "
        f"preset {report['preset']}, base {report.get('base', 'FULL')}, "
        f"seed {report.get('seed', 0)}; "
        + (
            f"image encoder pretrained first for {report['pretraining']['minutes']} min "
            f"({report['pretraining']['steps']} steps); "
            if "pretraining" in report
            else ""
        )
        + f"{report['train_questions']} training / "
        f"{report['test_questions']} test questions; {report['date']}, {report['machine']}.\n"
        f"Test accuracy (%) per family and per question type.\n\n" + per_type_table(report)
    ) + (
        f"\nValidation accuracy (%), {report['validation_questions']} questions held out "
        "of the training images.\n\n" + per_type_table(report, "validation")
        if report.get("validation_questions")
        else ""
    )


if __name__ == "__main__":
    main()
