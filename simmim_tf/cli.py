"""`simmim-tf`: the command line. Each subcommand parses arguments and calls
the library; TensorFlow is imported only by the subcommands that need it
(`predict` and the TFLite `evaluate` run without it)."""

import argparse
import inspect
import json
import os
import sys

from simmim_tf import machine
from simmim_tf.console import filter_native_logs
from simmim_tf.errors import SimMIMInputError
from simmim_tf.training.run_config import add_arguments as add_run_config_arguments


def _data_sort_of_clevr(args):
    from simmim_tf.data import sort_of_clevr

    n = sort_of_clevr.generate(
        args.out, args.num_images, args.seed, args.num_test, ternary=args.ternary
    )
    print(f"wrote {args.num_images} images and {n} questions to {args.out}")


def _data_clevr2d(args):
    from simmim_tf.data import clevr2d

    n = clevr2d.generate(
        args.out, args.num_images, args.seed, args.num_test, args.image_size, args.per_family
    )
    print(f"wrote {args.num_images} images, {n} questions and {2 * args.num_images} captions")


def _data_moving_shapes(args):
    from simmim_tf.data import moving_shapes

    n = moving_shapes.generate(args.out, args.num_clips, args.seed, args.num_test, args.frames)
    print(f"wrote {args.num_clips} clips of {args.frames} frames and {n} questions")


def _import(args):
    from simmim_tf.data.bad_records import BadRecords

    bad = BadRecords(skip=args.skip_bad_records)
    if args.generator == "import-vqav2":
        from simmim_tf.data.vqav2_import import import_vqav2

        n = import_vqav2(
            args.questions,
            args.annotations,
            args.images,
            args.out,
            args.split,
            args.image_size,
            bad,
            args.instances,
        )
        what = "questions"
    elif args.generator == "import-clevr":
        from simmim_tf.data.clevr_import import import_clevr

        n = import_clevr(
            args.questions, args.images, args.out, args.split, args.image_size, bad, args.scenes
        )
        what = "questions"
    else:
        from simmim_tf.data.coco_captions_import import import_coco_captions

        n = import_coco_captions(
            args.captions, args.images, args.out, args.split, args.image_size, bad, args.instances
        )
        what = "captions"
    print(f"wrote {n} {what} to {args.out} as split {args.split!r}")
    if bad.messages:
        print(f"skipped {len(bad)} bad record(s):\n{bad.summary()}")


def _data_inspect(args):
    from simmim_tf.data import folder_inspection
    from simmim_tf.data.vqa_dataset import read_questions

    records = read_questions(args.data)
    result = folder_inspection.summary(args.data, records)
    print(folder_inspection.format_summary(args.data, result))
    sheet = args.sheet or os.path.join(args.data, "contact_sheet.png")
    folder_inspection.contact_sheet(args.data, sheet, records, args.num_images, seed=args.seed)
    histogram = os.path.splitext(sheet)[0] + "_answers.png"
    folder_inspection.answer_histogram(result, histogram)
    print(f"contact sheet: {sheet}\nanswer histogram: {histogram}")


def _data_to_tfrecord(args):
    from simmim_tf.data.tfrecord_shards import write_shards
    from simmim_tf.data.vqa_dataset import read_questions

    records = read_questions(args.data)
    for split in sorted({r["split"] for r in records}):
        files = write_shards(args.data, split, args.shards, records)
        print(f"{split}: {len(files)} shards in {os.path.dirname(files[0])}")


def _data_validate(args):
    from simmim_tf.data.folder_validation import validate_folder

    vocabulary = None
    if args.run:
        from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
        from simmim_tf.training.runs import load_run

        vocabulary = AnswerVocabulary(load_run(args.run).preprocessor.answers)
    problems, counts = validate_folder(args.data, vocabulary, check_images=not args.no_images)
    print(", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing read")
    if problems:
        shown = problems[: args.max_problems]
        print("\n".join(shown))
        if len(problems) > len(shown):
            print(f"... and {len(problems) - len(shown)} more")
        raise SimMIMInputError(f"{args.data}: {len(problems)} problem(s) found")
    print(f"{args.data}: valid")


def _train(args):
    from simmim_tf.training.distribution import run_folder
    from simmim_tf.training.run_config import from_arguments
    from simmim_tf.training.vqa_trainer import train

    config = from_arguments(args)
    if machine.allocator() == "glibc malloc":
        print(
            "note: training with glibc's malloc, which on some machines spends a third of "
            "the time in the kernel; tcmalloc trains up to 1.7x faster (docs/training.md, "
            '"tcmalloc")'
        )
    if config.task == "retrieval":
        from simmim_tf.training.caption_trainer import train_retrieval

        model = train_retrieval(config, args.out)
    elif config.task == "captioning":
        from simmim_tf.training.caption_trainer import train_captioning

        model = train_captioning(config, args.out)
    elif config.task == "video-qa":
        from simmim_tf.training.video_trainer import train_video_qa

        model = train_video_qa(config, args.out)
    else:
        model = train(config, args.out)
    print(
        f"saved the preset {run_folder(args.out)} ({model.count_params():,} parameters); "
        f'load it with {type(model).__name__}.from_preset("{run_folder(args.out)}")'
    )


def _options_for(function, args):
    """The command's options that `function` takes under the same name
    (not those without a default, passed by position, nor the global
    `--verbose`, which is about native log lines)."""
    parameters = inspect.signature(function).parameters
    return {
        name: value
        for name, value in vars(args).items()
        if name in parameters
        and name != "verbose"
        and parameters[name].default is not inspect.Parameter.empty
    }


def _pretrain(args):
    from simmim_tf.training.pretraining import pretrain

    _, history = pretrain(args.images, args.out, **_options_for(pretrain, args))
    print(
        f"pretrained image encoder in {args.out} (masked-pixel L1 {history['loss'][-1]:.4f}); "
        f"figure: {args.out}/reconstructions.png; fine-tune with "
        f"`simmim-tf train --init-from {args.out} ...`"
    )


def _evaluate(args):
    from simmim_tf.evaluation import format_accuracy

    if bool(args.run) == bool(args.model):
        raise SimMIMInputError("give exactly one of --run RUN (Keras) or --model FILE.tflite")
    if args.run and _registered_task(args.run) == "simmim_tf>SimMIMRetriever":
        from simmim_tf.retrieval_recall import format_recall
        from simmim_tf.training.run_evaluation import evaluate_retrieval

        result = evaluate_retrieval(args.run, args.data, args.split)
        print(format_recall(result, f"Keras retriever {args.run} on {args.data} [{args.split}]"))
        return
    if args.run and _registered_task(args.run) == "simmim_tf>SimMIMCaptioner":
        from simmim_tf.caption_metrics import format_caption_scores
        from simmim_tf.training.run_evaluation import evaluate_captioning

        result = evaluate_captioning(args.run, args.data, args.split, args.beams)
        title = f"Keras captioner {args.run} on {args.data} [{args.split}], {result['decoding']}"
        print(format_caption_scores(result, title))
        return
    if args.beams is not None:
        raise SimMIMInputError("--beams is for captioning runs (--run CRUN of --task captioning)")
    if args.run and _registered_task(args.run) == "simmim_tf>SimMIMVideoQA":
        from simmim_tf.evaluation import format_accuracy
        from simmim_tf.training.run_evaluation import evaluate_video_qa

        result = evaluate_video_qa(args.run, args.data, args.split)
        print(
            format_accuracy(result, f"Keras video model {args.run} on {args.data} [{args.split}]")
        )
        return
    if args.model and _is_video_export(args.model):
        _evaluate_edge_video(args)
        return
    if args.model and _is_retrieval_tflite(args.model):
        from simmim_tf.edge.edge_retriever import evaluate_edge_retriever
        from simmim_tf.retrieval_recall import format_recall

        result = evaluate_edge_retriever(args.model, args.data, args.split)
        print(format_recall(result, f"TFLite retriever {args.model} on {args.data} [{args.split}]"))
        return
    if args.run:
        from simmim_tf.training.run_evaluation import evaluate

        result = evaluate(args.run, args.data, args.split)
        title = f"Keras model {args.run} on {args.data} [{args.split}]"
    else:
        from simmim_tf.evaluation import evaluate_tflite

        result = evaluate_tflite(args.model, args.data, args.split)
        title = f"TFLite model {args.model} on {args.data} [{args.split}]"
    print(format_accuracy(result, title))


def _registered_task(run_dir):
    """The registered class name in RUN/task.json ("" where there is none)."""
    path = os.path.join(run_dir, "task.json")
    if not os.path.isfile(path):
        return ""
    with open(path) as f:
        return json.load(f).get("registered_name", "")


def _is_video_export(path):
    from simmim_tf.edge.edge_video import VIDEO_META

    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, VIDEO_META))
    return os.path.basename(path).startswith("video_") and path.endswith(".tflite")


def _evaluate_edge_video(args):
    """`evaluate --model` of a video export: every clip streamed frame by
    frame through the exported steps, then its questions answered."""
    from simmim_tf.console import step
    from simmim_tf.data.clip_dataset import load_clip_split
    from simmim_tf.edge.edge_video import (
        EdgeVideoAnswerer,
        edge_video_answers,
        video_export_and_variant,
    )
    from simmim_tf.evaluation import accuracy_by_family, format_accuracy

    export_dir, variant = video_export_and_variant(args.model)
    answerer = EdgeVideoAnswerer(export_dir, variant)
    with step(f"reading the {args.split} split of {args.data}"):
        clips = load_clip_split(args.data, args.split, image_size=answerer.image_size)
    with step(f"streaming its {len(clips.frames):,} clips and answering {len(clips):,} questions"):
        predicted = edge_video_answers(answerer, clips)
    result = accuracy_by_family(
        predicted, clips.answers, clips.families, question_types=clips.question_types
    )
    title = f"TFLite video steps {export_dir} ({variant}) on {args.data} [{args.split}]"
    print(format_accuracy(result, title))


def _is_retrieval_tflite(path):
    return os.path.basename(path).startswith("retrieval_") and path.endswith(".tflite")


def _quantization_aware(args):
    from simmim_tf.export.quantization_aware import fine_tune_run

    if args.steps < 1:
        raise SimMIMInputError(f"--steps must be at least 1; got {args.steps}")
    if args.learning_rate <= 0:
        raise SimMIMInputError(f"--learning-rate must be positive; got {args.learning_rate}")
    record = fine_tune_run(args.run, args.out, args.data, **_options_for(fine_tune_run, args))
    print(
        f"wrote {args.out}: {record['steps']} quantization-aware steps with "
        f"{record['fake_quantized_tensors']} fake-quantized tensors (loss {record['loss']:.4f}); "
        f"export it with simmim-tf export --run {args.out}"
    )


def _export(args):
    from simmim_tf.export.litert_exporter import FORMATS, export_run
    from simmim_tf.export.tflite_conversion import VARIANTS
    from simmim_tf.export.tflite_model_ops import BUILTIN_OP_NAMES
    from simmim_tf.export.two_stage_export import TWO_STAGE_VARIANTS

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if not formats or set(formats) - set(FORMATS):
        raise SimMIMInputError(f"--format: choose from {FORMATS}; got {args.format!r}")
    if args.report and "tflite" not in formats:
        raise SimMIMInputError("--report measures the .tflite files: add tflite to --format")
    if args.web and "tflite" not in formats:
        raise SimMIMInputError("--web serves the .tflite files: add tflite to --format")
    task = _registered_task(args.run)
    if task == "simmim_tf>SimMIMVideoQA":
        _export_video_run(args, formats)
        return
    args.quantize = args.quantize or "float32,int8"
    if task in ("simmim_tf>SimMIMRetriever", "simmim_tf>SimMIMCaptioner"):
        _export_two_part(args, formats, "retrieval" if "Retriever" in task else "captioning")
        return
    variants = [v.strip() for v in args.quantize.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SimMIMInputError(f"--quantize: unknown variant(s) {unknown}; choose from {VARIANTS}")
    float_ops = [op.strip().upper() for op in args.int8_float_ops.split(",") if op.strip()]
    unknown = sorted(set(float_ops) - BUILTIN_OP_NAMES)
    if unknown:
        raise SimMIMInputError(
            f"--int8-float-ops: {unknown} not TFLite builtin op names (e.g. ONE_HOT, SOFTMAX, "
            "BATCH_MATMUL, FULLY_CONNECTED)"
        )
    two_stage = [v.strip() for v in args.two_stage.split(",") if v.strip()]
    if set(two_stage) - set(TWO_STAGE_VARIANTS):
        raise SimMIMInputError(f"--two-stage: choose from {TWO_STAGE_VARIANTS}; got {two_stage}")
    report = export_run(
        args.run,
        args.out,
        args.data,
        variants,
        args.calibration_size,
        two_stage,
        formats,
        int8_float_ops=float_ops,
    )
    if "saved_model" in formats:
        print(f"wrote {os.path.join(args.out, 'saved_model')} (numeric inputs)")
        print(f"wrote {os.path.join(args.out, 'serving', '1')} (image bytes + question strings)")
    _print_exported(report)
    if args.report:
        from simmim_tf.export.export_report import export_report, format_report

        print(format_report(export_report(args.out, args.run, _report_data(args))))
        print(f"wrote {os.path.join(args.out, 'report.json')} and report.md")
    _write_web(args)


def _write_web(args):
    """`--web WEB`: the export's part of the browser page (VQA, captioner or
    search), beside the parts WEB already has."""
    if not args.web:
        return
    from simmim_tf.export.web_export import export_web

    variants = export_web(args.out, args.web)
    print(
        f"wrote {os.path.join(args.web, 'index.html')} ({', '.join(variants)}): serve it with "
        f"`python -m http.server -d {args.web} 8000` and open http://localhost:8000 "
        "(docs/web.md: on a phone)"
    )


def _print_exported(report):
    """Each written file's size, and the GPU-delegate op check of each variant."""
    for name, size in report["files"].items():
        print(f"  {name:<32} {size / 1e6:7.3f} MB")
    for variant, problems in report["gpu_delegate_problems"].items():
        status = "all ops accepted" if not problems else "; ".join(problems)
        print(f"  GPU-delegate op check, {variant}: {status}")


def _report_data(args):
    """The data the report measures on: --data, or the run's training data."""
    from simmim_tf.training.run_config import RunConfig

    return args.data or RunConfig.load(os.path.join(args.run, "run_config.json")).data


def _export_video_run(args, formats):
    """`export` of a video-qa run: the per-frame step and the answer step."""
    from simmim_tf.data.clip_dataset import load_clip_split
    from simmim_tf.export.signature_conversion import calibration_data
    from simmim_tf.export.video_export import VIDEO_VARIANTS, export_video
    from simmim_tf.models.simmim_video_qa import SimMIMVideoQA

    variants = [v.strip() for v in (args.quantize or "float32,float16").split(",")]
    variants = [v for v in variants if v]
    if not variants or set(variants) - set(VIDEO_VARIANTS):
        raise SimMIMInputError(
            f"--quantize: a video-qa run exports {VIDEO_VARIANTS}; got {args.quantize!r}"
        )
    still_only = [
        flag
        for flag, used in [
            ("--two-stage", args.two_stage),
            ("--int8-float-ops", args.int8_float_ops != "ONE_HOT"),
            ("--web", args.web),
        ]
        if used
    ]
    if still_only:
        raise SimMIMInputError(f"{', '.join(still_only)}: for still-image runs, not video-qa")
    model = SimMIMVideoQA.from_preset(args.run)
    tokenizer, answers = model.preprocessor.question_tokenizer(), model.preprocessor.answers
    data = calibration_data(args.run, args.data, variants)
    clips = data and load_clip_split(data, "train", image_size=model.backbone.image_size)
    report = export_video(
        model, tokenizer, answers, args.out, variants, formats, clips, args.calibration_size
    )
    _print_exported(report)
    if args.report:
        from simmim_tf.export.video_report import format_report, video_report

        print(format_report(video_report(args.out, args.run, _report_data(args), variants)))
        print(f"wrote {os.path.join(args.out, 'video_report.json')} and video_report.md")
    print(
        f"answer a clip with `simmim-tf predict --model {args.out} --video CLIP --question Q`; "
        f"measure them with `simmim-tf evaluate --model {args.out} --data DATA`"
    )


def _export_two_part(args, formats, task):
    """`export` of a retrieval run (two towers) or a captioning run (image
    encoder and one-step decoder)."""
    variants = [v.strip() for v in args.quantize.split(",") if v.strip()]
    allowed = ("float32", "float16", "dynamic", "int8")
    kind = {"retrieval": "a retrieval", "captioning": "a captioning"}[task]
    if not variants or set(variants) - set(allowed):
        raise SimMIMInputError(f"--quantize: {kind} run exports {allowed}; got {args.quantize!r}")
    if args.two_stage:
        raise SimMIMInputError(f"--two-stage is for VQA runs; {kind} run has two parts already")
    if args.int8_float_ops != "ONE_HOT":
        raise SimMIMInputError(f"--int8-float-ops is for VQA runs, not {kind} run")
    if task == "retrieval":
        from simmim_tf.export.retrieval_export import export_retriever as export
        from simmim_tf.export.retrieval_report import format_report
        from simmim_tf.export.retrieval_report import retrieval_report as measure

        signatures, report_name = "image and text", "retrieval_report"
    else:
        from simmim_tf.export.captioner_export import export_captioner as export
        from simmim_tf.export.captioner_report import captioner_report as measure
        from simmim_tf.export.captioner_report import format_report

        signatures, report_name = "encoder and decoder", "captioner_report"
    report = export(args.run, args.out, args.data, variants, args.calibration_size, formats)
    if "saved_model" in formats:
        print(f"wrote {os.path.join(args.out, 'saved_model')} (signatures {signatures})")
    _print_exported(report)
    if args.report:
        print(format_report(measure(args.out, args.run, _report_data(args), variants)))
        print(f"wrote {os.path.join(args.out, report_name + '.json')} and {report_name}.md")
    _write_web(args)


def _index(args):
    from simmim_tf.edge.edge_retriever import EdgeRetriever, ImageIndex

    retriever = EdgeRetriever.from_tower_path(args.model)
    count = ImageIndex.build(retriever, args.images, args.out, args.skip_bad_images)
    print(
        f"indexed {count} images in {args.out}; search it with "
        f'`simmim-tf search --index {args.out} --query "..."`'
    )


def _search(args):
    from simmim_tf.edge.edge_retriever import EdgeRetriever, ImageIndex

    if not os.path.isfile(os.path.join(args.index, "index.json")):
        raise SimMIMInputError(f"--index {args.index}: not an image index (no index.json)")
    with open(os.path.join(args.index, "index.json")) as f:
        info = json.load(f)
    if args.model:
        retriever = EdgeRetriever.from_tower_path(args.model)
    else:
        retriever = EdgeRetriever(info["export_dir"], info["variant"])
    results = ImageIndex(args.index, retriever).search(args.query, args.top_k)
    unknown = retriever.tokenizer.unknown_words(args.query)
    if unknown:
        print(f"note: words the model does not know, read as unknown: {', '.join(unknown)}")
    for rank, (path, score) in enumerate(results, 1):
        print(f"{rank:>3}. {score:.3f}  {path}")
    if args.sheet:
        from simmim_tf.plotting import save_search_sheet

        save_search_sheet(results, args.query, args.sheet)
        print(f"contact sheet: {args.sheet}")


def _caption(args):
    from simmim_tf.edge.edge_captioner import CAPTIONER_META
    from simmim_tf.preprocessing.image_loading import load_image

    model = args.model
    variant = args.variant
    name = os.path.basename(model.rstrip(os.sep))
    if os.path.isfile(model) and name.startswith("captioner_") and name.endswith(".tflite"):
        model, variant = os.path.dirname(model) or ".", name[len("captioner_") :].rsplit("_", 1)[0]
    if os.path.isfile(os.path.join(model, "task.json")):
        if _registered_task(model) != "simmim_tf>SimMIMCaptioner":
            raise SimMIMInputError(
                f"--model {args.model}: not a captioner (its task is "
                f"{_registered_task(model) or 'unknown'}); train one with --task captioning"
            )
        from simmim_tf.models.simmim_captioner import SimMIMCaptioner

        captioner = SimMIMCaptioner.from_preset(model)
        image = load_image(args.image)
        print(captioner.generate([image], args.max_length, args.beams)[0])
        return
    if not os.path.isfile(os.path.join(model, CAPTIONER_META)):
        raise SimMIMInputError(
            f"--model {args.model}: not a captioner (a captioning run folder, or its export "
            f"with {CAPTIONER_META})"
        )
    if args.beams not in (None, 1):
        raise SimMIMInputError(
            "--beams: the edge captioner decodes greedily; give the run folder for beam search"
        )
    from simmim_tf.edge.edge_captioner import EdgeCaptioner

    captioner = EdgeCaptioner(model, variant)
    print(captioner.caption(load_image(args.image), args.max_length))


def _predict(args):
    if args.video:
        return _predict_video(args)
    from simmim_tf.edge import EdgePredictor
    from simmim_tf.preprocessing.image_loading import load_image

    predictor = EdgePredictor(args.model)
    image = load_image(args.image, predictor.image_size)
    prediction = predictor.predict(image, args.question, top_k=args.top_k)
    print(f"{prediction.answer} ({prediction.probability:.1%})")
    if prediction.unknown_words:
        unknown = ", ".join(repr(w) for w in prediction.unknown_words)
        print(f"  note: words the model does not know, read as unknown: {unknown}")
    for answer, p in prediction.top_k[1:]:
        print(f"  or {answer} ({p:.1%})")
    if args.explain:
        from simmim_tf.plotting import save_attention_overlay

        save_attention_overlay(
            image,
            prediction.attention_map,
            args.question,
            prediction.answer,
            args.explain,
            prediction.probability,
            anchor_map=prediction.anchor_map,
        )
        drawn = "the visual attention"
        if prediction.anchor_map is not None:
            drawn += " and the relational anchor (the object the question names)"
        print(f"attention heatmap: {args.explain} ({drawn})")


def _predict_video(args):
    """`predict --video`: the clip's frames pushed one at a time through the
    exported per-frame step, then the question answered from the state."""
    from simmim_tf.data.clip_dataset import load_clip
    from simmim_tf.edge.edge_video import EdgeVideoAnswerer, video_export_and_variant

    if args.explain:
        raise SimMIMInputError("--explain draws still images only; leave it out with --video")
    export_dir, variant = video_export_and_variant(args.model)
    answerer = EdgeVideoAnswerer(export_dir, variant)
    frames = load_clip(args.video)
    for frame in frames:
        answerer.push(frame)
    answer = answerer.answer(args.question, top_k=args.top_k)
    print(f"{answer['answer']} ({answer['probability']:.1%}) after {len(frames)} frames")
    if answer["unknown_words"]:
        unknown = ", ".join(repr(w) for w in answer["unknown_words"])
        print(f"  note: words the model does not know, read as unknown: {unknown}")
    for other, p in answer["top_k"][1:]:
        print(f"  or {other} ({p:.1%})")


def _generator_arguments(parser, default_test, unit="images", count=10000):
    """The arguments every data generator takes (`--num-images`, or
    `--num-clips` with `unit` "clips")."""
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(f"--num-{unit}", type=int, default=count, help=f"{unit} (default {count})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--num-test",
        type=int,
        default=None,
        help=f"test {unit}, taken last (default {default_test})",
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="simmim-tf",
        description="SimMIM visual question answering, image–text retrieval and captioning: "
        "make data, pretrain, train, evaluate, export to TFLite, answer questions, search "
        "images and caption them on-device.",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's and LiteRT's native log lines (hidden by default)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(sub)
    _add_pretrain_command(sub)
    _add_train_command(sub)
    _add_evaluate_command(sub)
    _add_quantization_aware_command(sub)
    _add_export_command(sub)
    _add_predict_command(sub)
    _add_retrieval_commands(sub)
    _add_caption_command(sub)
    return parser


def _add_data_commands(sub):
    """`data`: generators, importers, inspect, to-tfrecord, validate."""
    data = sub.add_parser("data", help="generate, import, inspect and validate data sets")
    data = data.add_subparsers(dest="generator", required=True, metavar="ACTION")
    soc = data.add_parser(
        "sort-of-clevr",
        help="Sort-of-CLEVR (Santoro et al. 2017): 75x75 images, 6 objects, 20 questions each",
    )
    _generator_arguments(soc, "200, at most a tenth of the images")
    soc.add_argument(
        "--ternary",
        action="store_true",
        help="add 10 ternary questions per image (between, on the line, obtuse triangle)",
    )
    soc.set_defaults(func=_data_sort_of_clevr)

    c2d = data.add_parser(
        "clevr2d",
        help="CLEVR-2D: 3-10 objects (8 colours, 4 shapes, 2 sizes), 5 balanced question "
        "families with paraphrases, 2 captions per image",
    )
    _generator_arguments(c2d, "500, at most a tenth of the images")
    c2d.add_argument("--image-size", type=int, default=128, help="pixels (default 128)")
    c2d.add_argument(
        "--per-family", type=int, default=4, help="questions per family per image (default 4)"
    )
    c2d.set_defaults(func=_data_clevr2d)

    ms = data.add_parser(
        "moving-shapes",
        help="clips of 4 objects that move and bounce off the walls (48x48, default 8 "
        "frames), with descriptive, motion, event and order questions and a caption per clip",
    )
    _generator_arguments(ms, "200, at most a tenth of the clips", "clips", 3000)
    ms.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    ms.set_defaults(func=_data_moving_shapes)

    _add_importers(data)
    _add_data_tools(data)


def _add_importers(data):
    """`data import-vqav2`, `import-clevr`, `import-coco-captions`."""
    importers = {
        "import-vqav2": ("VQAv2: questions and annotations JSON, COCO images", 224),
        "import-clevr": ("CLEVR v1.0: questions JSON and images", 128),
        "import-coco-captions": ("COCO captions JSON and images, into captions.jsonl", 224),
    }
    for name, (what, size) in importers.items():
        im = data.add_parser(
            name,
            help=f"import {what}",
            description=f"Imports {what} into a simmim_tf data folder (docs/data.md: Format). "
            "Images are converted to RGB PNG of --image-size square. The records of --split "
            "are replaced; other splits already in OUT are kept.",
        )
        if name == "import-coco-captions":
            im.add_argument("--captions", required=True, help="captions_<subset>.json")
        else:
            im.add_argument("--questions", required=True, help="questions JSON file")
        if name == "import-vqav2":
            im.add_argument("--annotations", required=True, help="annotations JSON file")
        if name == "import-clevr":
            im.add_argument(
                "--scenes",
                help="CLEVR_<split>_scenes.json: every object's position, colour, shape, size "
                "and material into scenes.jsonl, for the grounding and anchor losses "
                "(default: none)",
            )
        else:
            im.add_argument(
                "--instances",
                help="COCO's instances_<subset>.json: every object's box and category into "
                "scenes.jsonl, for the grounding and anchor losses (default: none)",
            )
        im.add_argument("--images", required=True, help="folder of the images the file names")
        im.add_argument("--out", required=True, help="data folder to write or add to")
        im.add_argument("--split", required=True, help="split name to give: train, val, test")
        im.add_argument("--image-size", type=int, default=size, help=f"pixels (default {size})")
        im.add_argument(
            "--skip-bad-records",
            action="store_true",
            help="skip (and list) bad entries and missing images instead of stopping",
        )
        im.set_defaults(func=_import)


def _add_data_tools(data):
    """`data inspect`, `to-tfrecord`, `validate`."""
    ins = data.add_parser(
        "inspect",
        help="counts per family, answers per family, a contact sheet of images with "
        "their questions",
    )
    ins.add_argument("--data", required=True, help="data folder")
    ins.add_argument("--sheet", help="contact sheet PNG (default DATA/contact_sheet.png)")
    ins.add_argument("--num-images", type=int, default=12, help="images on the sheet (default 12)")
    ins.add_argument("--seed", type=int, default=0, help="which images (default 0)")
    ins.set_defaults(func=_data_inspect)

    tfr = data.add_parser(
        "to-tfrecord",
        help="write DATA/tfrecords/<split>-*.tfrecord shards (one record per image with its "
        "questions) for train --input-pipeline tfrecord",
    )
    tfr.add_argument("--data", required=True, help="data folder")
    tfr.add_argument("--shards", type=int, default=8, help="shards per split (default 8)")
    tfr.set_defaults(func=_data_to_tfrecord)

    va = data.add_parser(
        "validate",
        help="check a data folder: every bad line or image, with file and line",
        description="Checks questions.jsonl, scenes.jsonl and captions.jsonl against the "
        "format of docs/data.md and decodes every image they name. Prints each problem as "
        "FILE:LINE: what is wrong, and exits 2 if there is any.",
    )
    va.add_argument("--data", required=True, help="data folder")
    va.add_argument(
        "--run", help="also check that every answer is among this run's (preset's) answers"
    )
    va.add_argument("--no-images", action="store_true", help="check that images exist only")
    va.add_argument("--max-problems", type=int, default=50, help="problems printed (default 50)")
    va.set_defaults(func=_data_validate)


def _add_pretrain_command(sub):
    """`pretrain`: masked-image pretraining of the image encoder on a folder of images."""
    pt = sub.add_parser(
        "pretrain",
        help="pretrain the image encoder by masked-image modelling (SimMIM) on unlabelled images",
        description="Masks 60% of each image in 2x2-region patches and trains the image "
        "encoder to reconstruct the masked pixels (L1). Writes a folder for "
        "`simmim-tf train --init-from`, with a figure of its reconstructions. Resumes "
        "if interrupted.",
    )
    pt.add_argument(
        "--images", required=True, help="folder of PNG/JPEG images (searched recursively)"
    )
    pt.add_argument("--out", required=True, help="folder to write")
    pt.add_argument(
        "--preset",
        default="tiny",
        choices=("tiny", "small", "base"),
        help="architecture of the image encoder (default tiny)",
    )
    pt.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side images are resized to; use the VQA data's (default: the first "
        "image's larger side)",
    )
    pt.add_argument(
        "--image-layers",
        type=int,
        default=None,
        help="transformer layers over the regions (default: the preset's; 2 for tiny, which "
        "has none: masked regions are predicted from the others through them)",
    )
    _pretraining_recipe_arguments(pt)
    pt.set_defaults(func=_pretrain)


def _pretraining_recipe_arguments(pt):
    """`pretrain`'s schedule and masking."""
    pt.add_argument("--epochs", type=int, default=10, help="passes over the images (default 10)")
    pt.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    pt.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="peak learning rate, warm-up then cosine decay (default 1e-3)",
    )
    pt.add_argument(
        "--mask-ratio",
        type=float,
        default=0.6,
        help="share of mask patches masked (default 0.6, as SimMIM)",
    )
    pt.add_argument(
        "--mask-patch-size",
        type=int,
        default=None,
        help="mask patch side in pixels, a multiple of the model's patch "
        "(default twice the patch: 16 px)",
    )
    pt.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave unreadable files out (counted, listed in OUT/skipped_images.txt) "
        "instead of stopping",
    )
    pt.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _add_train_command(sub):
    """`train`: the run's options are generated from `RunConfig`."""
    tr = sub.add_parser(
        "train",
        help="train SimMIMVQA (or, with --task retrieval, captioning or video-qa, "
        "SimMIMRetriever, SimMIMCaptioner or SimMIMVideoQA) with model.fit",
    )
    tr.add_argument(
        "--out",
        required=True,
        help="run folder to write: a preset of the model, plus the run's files "
        "(resumes if interrupted)",
    )
    add_run_config_arguments(tr)
    tr.set_defaults(func=_train)


def _add_evaluate_command(sub):
    """`evaluate`: a run's Keras model or a .tflite."""
    ev = sub.add_parser(
        "evaluate",
        help="accuracy per question family (VQA), Recall@1/5/10 both ways (retrieval), or "
        "BLEU-4 and CIDEr-D (captioning)",
    )
    ev.add_argument("--run", help="run folder (evaluates the Keras model; writes RUN/eval.json)")
    ev.add_argument(
        "--model",
        help=".tflite file (evaluates it with ai-edge-litert; for retrieval either tower's "
        "file, retrieval_VARIANT_image.tflite or _text.tflite, with its twin beside it)",
    )
    ev.add_argument("--data", required=True, help="data folder")
    ev.add_argument("--split", default="test", help="split to evaluate (default test)")
    ev.add_argument(
        "--beams",
        type=int,
        help="captioning: beam search with this many beams (default: greedy decoding)",
    )
    ev.set_defaults(func=_evaluate)


def _add_quantization_aware_command(sub):
    """`quantization-aware`: int8 fake-quantization fine-tuning."""
    qa = sub.add_parser(
        "quantization-aware",
        help="fine-tune a run with int8 fake quantization before exporting int8",
        description="Fine-tunes RUN's model with 8-bit fake quantization where the int8 model "
        "quantizes (over the ranges the int8 calibration records) and writes a new run folder. "
        "`simmim-tf export --run OUT` then hands those ranges to the int8 converter. "
        "OUT is for the int8 export only: it learns to answer on int8's rounding, and its own "
        "float32 answers less well; export float32, float16 and dynamic from RUN. "
        "docs/export.md's quantization-aware tables say when it helps.",
    )
    qa.add_argument("--run", required=True, help="trained run folder")
    qa.add_argument("--out", required=True, help="new run folder to write")
    qa.add_argument("--data", help="training data folder (default: the run's)")
    # docs/export.md: on CLEVR-2D, 6,000 steps at 2e-5 brought int8 within
    # 0.5 points of float32 on every family; 1e-4 broke counting in float.
    qa.add_argument(
        "--steps",
        type=int,
        default=6000,
        help="fine-tuning steps (default 6000: 27 minutes for the tiny preset on CLEVR-2D's "
        "128-pixel images, one CPU core)",
    )
    qa.add_argument(
        "--learning-rate", type=float, default=2e-5, help="constant learning rate (default 2e-5)"
    )
    qa.add_argument("--batch-size", type=int, default=64, help="questions per step (default 64)")
    qa.add_argument(
        "--calibration-size",
        type=int,
        default=200,
        help="calibration questions for the ranges, as for export (default 200)",
    )
    qa.add_argument(
        "--scope",
        choices=("converter", "matmul_inputs"),
        default="converter",
        help="converter: every tensor the int8 converter quantizes, weights included, ranges "
        "saved for the export; matmul_inputs: only the inputs of Dense and Conv2D layers, "
        "ranges not saved (the first version) (default converter)",
    )
    qa.add_argument(
        "--losses",
        choices=("answer", "training", "distill"),
        default="answer",
        help="answer: the answer loss on plain question batches; training: the training's "
        "own losses on its image-grouped batches (the anchor loss too, where the model has "
        "relational attention and the data has scenes); distill: cross-entropy to RUN's own "
        "float answer distribution on plain question batches (default answer)",
    )
    qa.set_defaults(func=_quantization_aware)


def _add_export_command(sub):
    """`export`: SavedModel and TFLite variants."""
    ex = sub.add_parser("export", help="SavedModel and TFLite (builtin ops only)")
    ex.add_argument("--run", required=True, help="trained run folder")
    ex.add_argument("--out", required=True, help="export folder")
    ex.add_argument("--data", help="calibration data folder (default: the run's training data)")
    ex.add_argument(
        "--format",
        default="saved_model,tflite",
        help="comma-separated: saved_model (EXP/saved_model, and EXP/serving/1 for TF Serving: "
        "image bytes and question strings in), tflite (the --quantize variants and "
        "simmim_meta.json) (default both)",
    )
    ex.add_argument(
        "--quantize",
        default=None,
        help="comma-separated variants: float32, float16 (GPU delegate), dynamic (int8 "
        "weights, float activations), int8 (integer, calibrated; see --int8-float-ops), "
        "int8_mixed (calibrated int8 in the fully connected and convolution layers, the "
        "rest float) (default float32,int8; a video-qa run: float32,float16)",
    )
    ex.add_argument(
        "--calibration-size",
        type=int,
        default=200,
        help="int8 calibration questions (default 200)",
    )
    ex.add_argument(
        "--int8-float-ops",
        default="ONE_HOT",
        metavar="OPS",
        help="comma-separated TFLite op types the int8 model keeps in float (selective "
        "quantization; docs/export.md's int8 table compares choices). ONE_HOT has no weights and "
        "TFLite's int8 kernel for it is wrong by ~125 steps; '' gives a fully integer model "
        "(default ONE_HOT)",
    )
    ex.add_argument(
        "--two-stage",
        default="",
        metavar="VARIANTS",
        help="also write model_<variant>_encode_image.tflite and model_<variant>_answer.tflite "
        "(float32, float16 or dynamic): the image encoder runs once per picture, each further "
        "question runs the answer model alone (default: none)",
    )
    _add_export_reports(ex)
    ex.set_defaults(func=_export)


def _add_export_reports(ex):
    """`export`'s measurements and page: `--report` and `--web`."""
    ex.add_argument(
        "--report",
        action="store_true",
        help="then measure each variant (size, accuracy per family, agreement with Keras, "
        "latency with 1 and 2 threads, GPU-delegate ops) into OUT/report.json and report.md; "
        "a video-qa run's: the state's size and the ms of a frame step and of an answer, "
        "into OUT/video_report.json and .md",
    )
    ex.add_argument(
        "--web",
        metavar="WEB",
        help="also write a static page to WEB that runs the export in the browser with "
        "LiteRT.js (WebGPU or WebAssembly), offline once loaded: a photo or picture, a typed "
        "question, the answer and where the model looked; a captioning or retrieval run's "
        "export joins the page already in WEB as a caption button or a search (docs/web.md)",
    )


def _add_caption_command(sub):
    """`caption`: a caption for one image, from a run (Keras) or its export (edge)."""
    ca = sub.add_parser(
        "caption",
        help="caption an image with a captioning run (Keras) or its export (edge runtime)",
        description="Prints a caption of IMAGE. With a run folder the Keras model generates it "
        "(greedy, or beam search with --beams); with an export folder or one of its "
        "captioner_VARIANT_*.tflite files the edge runtime does (greedy, no TensorFlow).",
    )
    ca.add_argument(
        "--model", required=True, help="captioning run folder, its export folder, or a .tflite"
    )
    ca.add_argument("--image", required=True, help="PNG or JPEG")
    ca.add_argument(
        "--variant",
        default="float32",
        help="with an export folder: float32, float16, dynamic or int8 (default float32)",
    )
    ca.add_argument("--beams", type=int, help="beam search with this many beams (Keras only)")
    ca.add_argument(
        "--max-length", type=int, help="words to generate at most (default: the model's length)"
    )
    ca.set_defaults(func=_caption)


def _add_predict_command(sub):
    """`predict`: one answer from a .tflite."""
    pr = sub.add_parser(
        "predict", help="answer a question about an image or a clip with an exported model"
    )
    pr.add_argument(
        "--model",
        required=True,
        help="exported .tflite (simmim_meta.json beside it); with --video, the video "
        "export's folder or one of its video_*_VARIANT.tflite files",
    )
    source = pr.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--image",
        help="PNG or JPEG of any size and mode (grayscale, palette and RGBA are converted)",
    )
    source.add_argument(
        "--video",
        metavar="CLIP",
        help="a folder of frames (PNG or JPEG, in name order), an animated GIF or a video file "
        "(.mp4, .mov, .avi, .mkv, .webm): pushed one frame at a time through the streaming "
        "memory (simmim_tf.edge.EdgeVideoAnswerer)",
    )
    pr.add_argument("--question", required=True, help="the question, in words")
    pr.add_argument("--top-k", type=int, default=3, help="answers to list (default 3)")
    pr.add_argument(
        "--explain",
        metavar="PNG",
        help="write a picture of where the model looks here: the visual attention "
        "and, where the model has one, the relational anchor that the answer is read from",
    )
    pr.set_defaults(func=_predict)


def _add_retrieval_commands(sub):
    """`index` and `search`: a folder of images searched by text, on the edge runtime."""
    ix = sub.add_parser(
        "index",
        help="embed a folder of images with an exported retrieval model, once",
        description="Embeds every PNG or JPEG under IMAGES with the image tower of an exported "
        "retrieval model (ai-edge-litert, no TensorFlow) and writes an index that "
        "`simmim-tf search` ranks by text.",
    )
    ix.add_argument(
        "--model",
        required=True,
        help="EXP/retrieval_VARIANT_image.tflite (from `simmim-tf export` of a retrieval run)",
    )
    ix.add_argument("--images", required=True, help="folder of images (searched recursively)")
    ix.add_argument("--out", required=True, help="index folder to write")
    ix.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave unreadable files out (counted, listed in OUT/skipped_images.txt)",
    )
    ix.set_defaults(func=_index)
    se = sub.add_parser(
        "search",
        help="the images of an index nearest to a text query",
        description="Ranks the images of an index by cosine similarity to the query's "
        "embedding, nearest first. The text tower is the one the index was built with, "
        "unless --model names another file of the same model.",
    )
    se.add_argument("--index", required=True, help="folder written by `simmim-tf index`")
    se.add_argument("--query", required=True, help='e.g. "a large red circle"')
    se.add_argument("--top-k", type=int, default=5, help="images to show (default 5)")
    se.add_argument("--model", help="a tower file of the same model, e.g. its int8 variant")
    se.add_argument("--sheet", metavar="PNG", help="write a contact sheet of the top images here")
    se.set_defaults(func=_search)


# Options that name a file or folder that must already exist. They are
# checked before a command imports TensorFlow, so a typo fails at once.
EXISTING_PATHS = (
    "data",
    "run",
    "model",
    "image",
    "images",
    "init_from",
    "index",
    "questions",
    "annotations",
    "captions",
    "scenes",
    "instances",
)


def _missing_path(args):
    """'--name PATH: not found' for the first option naming a missing path, or None."""
    for name in EXISTING_PATHS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value and not os.path.exists(value):
            return f"--{name.replace('_', '-')} {value}: not found"
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.verbose:
        # TensorFlow's and LiteRT's native log lines (oneDNN, CUDA probes,
        # absl, the XNNPACK delegate): only the command's own output reaches
        # the terminal. Filtering descriptor 2 is for the command line only
        # (argv None), not for a caller's process.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if argv is None:
            filter_native_logs()
    missing = _missing_path(args)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except SimMIMInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
