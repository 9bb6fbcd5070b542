"""`make demo`: the whole path on built-in data, on a CPU, in minutes.

Generates Sort-of-CLEVR, trains the tiny preset with `model.fit`, evaluates
it, exports SavedModel + float32 and int8 TFLite, evaluates the int8 model
with ai-edge-litert, answers a few questions and draws one attention map.
Every figure printed is measured in this run and saved to
OUT/demo_results.json.
"""

import argparse
import contextlib
import json
import os
import time

from simmim_tf import machine
from simmim_tf.evaluation import evaluate_tflite, format_accuracy

# The epochs README's `make demo` figures took (6 minutes on a 2-core CPU with
# AVX-512, docs/benchmarks.md); a slower machine fits fewer in the budget.
RECIPE_EPOCHS = 7


@contextlib.contextmanager
def _timed(timings, name):
    """Adds the seconds its block takes to `timings[name]`."""
    started = time.time()
    yield
    timings[name] = time.time() - started


def run(out, num_images, epochs, batch_size, learning_rate, seed, minutes=None):
    from simmim_tf.data import sort_of_clevr
    from simmim_tf.export.litert_exporter import export_run
    from simmim_tf.training.run_config import RunConfig
    from simmim_tf.training.run_evaluation import evaluate
    from simmim_tf.training.vqa_trainer import train

    data, run_dir, export_dir = (os.path.join(out, d) for d in ("data", "run", "export"))
    timings = {}
    with _timed(timings, "data_s"):
        if not os.path.isfile(os.path.join(data, "questions.jsonl")):
            sort_of_clevr.generate(data, num_images, seed)

    budget = f"{minutes:g} minutes or {epochs} epochs, whichever ends first" if minutes else ""
    print(f"\n== Training the tiny preset for {budget or f'{epochs} epochs'} ==")
    config = RunConfig(
        data=data,
        preset="tiny",
        epochs=epochs,
        minutes=minutes,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
    )
    with _timed(timings, "train_s"):
        model = train(config, run_dir)
    with open(os.path.join(run_dir, "history.json")) as f:
        epochs_trained = len(json.load(f)["loss"])
    with _timed(timings, "evaluate_keras_s"):
        keras_accuracy = evaluate(run_dir, data)
    print("\n== Export (SavedModel, TFLite float32 and int8) ==")
    with _timed(timings, "export_s"):
        report = export_run(run_dir, export_dir, variants=("float32", "int8"))
    web = _web_page(export_dir, os.path.join(out, "web"))
    int8_path = os.path.join(export_dir, "model_int8.tflite")
    with _timed(timings, "evaluate_int8_s"):
        int8_accuracy = evaluate_tflite(int8_path, data)

    examples, pictures, named = _pictures_and_examples(out, data, run_dir, int8_path)
    results = {
        "machine": machine.describe(),
        "config": {"num_images": num_images, **vars(config)},
        "parameters": model.count_params(),
        "accuracy": {"keras": keras_accuracy, "tflite_int8": int8_accuracy},
        "sizes_bytes": report["files"],
        "gpu_delegate_problems": report["gpu_delegate_problems"],
        "timings_s": timings,
        "epochs_trained": epochs_trained,
        "short_of_recipe": _short_of_recipe(minutes, epochs_trained, timings["train_s"]),
        "examples": examples,
        "attention_on_named_object": named,
    }
    with open(os.path.join(out, "demo_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    _print_results(results, pictures)
    print(web)
    return results


def _short_of_recipe(minutes, epochs_trained, train_s):
    """A line saying that the time budget held fewer epochs than README's
    figures took, and how to train them here; None when it did not."""
    if not minutes or epochs_trained >= RECIPE_EPOCHS:
        return None
    estimate = train_s / epochs_trained * RECIPE_EPOCHS / 60
    return (
        f"This machine trained {epochs_trained} epoch(s) in the {minutes:g}-minute budget; "
        f"README's figures (relational about 95%) took {RECIPE_EPOCHS}, so expect less here. "
        f"For them: `python -m simmim_tf.demo --minutes 0 --epochs {RECIPE_EPOCHS}` "
        f"(about {estimate:.0f} minutes of training at this machine's pace)."
    )


def _web_page(export_dir, web_dir):
    """Writes the browser page of the export; returns the line that says how to open it."""
    from simmim_tf.errors import SimMIMInputError
    from simmim_tf.export.web_export import export_web

    try:
        export_web(export_dir, web_dir)
    except SimMIMInputError as e:
        return f"Web page: not written ({e})"
    return (
        f"Web page: `python -m http.server -d {web_dir} 8000`, then open "
        "http://localhost:8000 (docs/web.md: on a phone)"
    )


def _pictures_and_examples(out, data, run_dir, int8_path):
    """Six test questions answered by the int8 model on the edge runtime, the
    attention pictures of the first (int8; Keras with all three attentions),
    and the share of the visual attention on the named object. Returns
    (examples, picture paths, named-object shares)."""
    from simmim_tf.data.vqa_dataset import load_split, read_scenes
    from simmim_tf.edge import EdgePredictor
    from simmim_tf.explanation import attention_on_named_objects, explain
    from simmim_tf.plotting import save_attention_overlay
    from simmim_tf.training.runs import load_run

    predictor = EdgePredictor(int8_path)
    test = load_split(data, "test", image_size=predictor.image_size)
    examples, predictions = [], []
    for i in range(0, len(test), max(1, len(test) // 6))[:6]:
        p = predictor.predict(test.images[test.image_index[i]], test.questions[i])
        predictions.append(p)
        examples.append(
            {
                "image": test.image_paths[test.image_index[i]],
                "question": test.questions[i],
                "expected": test.answers[i],
                "answer": p.answer,
                "probability": p.probability,
            }
        )
    image, question, first = test.images[test.image_index[0]], test.questions[0], predictions[0]
    pictures = [os.path.join(out, "attention.png"), os.path.join(out, "attention_keras.png")]
    save_attention_overlay(
        image, first.attention_map, question, first.answer, pictures[0], first.probability
    )
    # The same question explained from the Keras model: all three attentions.
    keras_model = load_run(run_dir)
    e = explain(keras_model, image, question)
    save_attention_overlay(
        image,
        e.visual_map,
        question,
        e.answer,
        pictures[1],
        e.probability,
        memory_map=e.memory_map,
        words=e.words,
        word_weights=e.word_weights,
        expected=test.answers[0],
        anchor_map=e.anchor_map,
    )
    # Does the question's attention land on the object it names? (Its share
    # of the visual attention inside that object's box, every 4th question.)
    named = attention_on_named_objects(keras_model, test, read_scenes(data), every=4)
    return examples, pictures, named


def _print_results(results, pictures):
    accuracy, named = results["accuracy"], results["attention_on_named_object"]
    print("\n== Results ==")
    print(format_accuracy(accuracy["keras"], "Keras model, test split"))
    print(
        format_accuracy(accuracy["tflite_int8"], "int8 TFLite model (ai-edge-litert), test split")
    )
    print("Model sizes:")
    for name, size in results["sizes_bytes"].items():
        print(f"  {name:<24} {size / 1e6:.3f} MB")
    print("Questions answered by the int8 model:")
    for e in results["examples"]:
        mark = "ok " if e["answer"] == e["expected"] else "NO "
        print(
            f"  [{mark}] {e['image']}: {e['question']} -> {e['answer']} "
            f"({e['probability']:.0%}; expected {e['expected']})"
        )
    print(f"Attention heatmaps: {pictures[0]} (int8), {pictures[1]} (Keras, all attentions)")
    anchor = named.get("anchor_share")
    print(
        f"Visual attention inside the named object's box: {named['share']:.1%} "
        f"(uniform attention: {named['uniform_share']:.1%}; {named['questions']} questions)"
        + (f"; the relational anchor's: {anchor:.1%}" if anchor is not None else "")
    )
    print("Timings: " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings_s"].items()))
    if results["short_of_recipe"]:
        print(results["short_of_recipe"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--num-images", type=int, default=2000, help="(default 2000)")
    parser.add_argument(
        "--minutes",
        type=float,
        default=6.0,
        help="training time, so that the whole demo ends within 10 minutes on a slow day "
        "(default 6; 0: --epochs alone)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="at most (default 10)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default 64)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="(default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="(default 0)")
    args = parser.parse_args(argv)
    start = time.time()
    run(
        args.out,
        args.num_images,
        args.epochs,
        args.batch_size,
        args.learning_rate,
        args.seed,
        args.minutes or None,
    )
    print(f"The demo took {(time.time() - start) / 60:.1f} minutes.")


if __name__ == "__main__":
    main()
