"""How far 16x8 (int16 activations, int8 weights) gets on a run's model,
and which op stops it.

Three routes, each printed with where it fails:

1. TFLiteConverter's own 16x8 (`EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_
   INT16_WEIGHTS_INT8`): calibration needs a range for the int32 token-id
   input.
2. The quantization debugger with ONE_HOT kept float, the package's int8
   route: ignores the 16x8 ops set and writes int8.
3. Calibrate only, then TF's MLIR quantizer asked for int16 with ONE_HOT
   kept float. Each binary op with a constant operand that the quantizer
   refuses ("operands have same element type") is kept float by node name
   and the quantization retried; the model that comes out is then run on
   test questions with ai-edge-litert and compared with Keras.

    python -m benchmarks.int16x8_probe --run demo_out/run --data demo_out/data
"""

import argparse
import collections
import os
import re
import tempfile

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.compiler.mlir.lite import types_pb2
from tensorflow.lite.python import convert

from simmim_tf.export import serving_saved_model, tflite_conversion
from simmim_tf.export.tflite_model_ops import read_ops
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.training.run_evaluation import load_run_and_split

INT16_OPS = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8


def converter_16x8(saved_model, samples):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=["single"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(samples)
    converter.target_spec.supported_ops = [INT16_OPS, tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def last_line(error):
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else repr(error)


def mlir_quantize_int16(calibrated, float_nodes):
    """(flatbuffer or None, MLIR's error text): stderr is where it reports."""
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        flatbuffer = convert.mlir_quantize(
            calibrated,
            inference_type=types_pb2.QUANTIZED_INT16,
            denylisted_ops=["ONE_HOT"],
            denylisted_nodes=float_nodes,
        )
    except Exception:  # the reason is on stderr
        flatbuffer = None
    finally:
        os.dup2(saved, 2)
        os.close(write)
    return flatbuffer, os.read(read, 1 << 20).decode(errors="replace")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--questions", type=int, default=300, help="test questions compared")
    parser.add_argument("--max-float-nodes", type=int, default=20)
    args = parser.parse_args()

    model, test, inputs = load_run_and_split(args.run, args.data, count=args.questions)
    tokenizer = model.preprocessor.question_tokenizer()
    answers = AnswerVocabulary(model.preprocessor.answers)
    samples = tflite_conversion.representative_samples(
        args.data, tokenizer, model.backbone.image_size, 200
    )
    with tempfile.TemporaryDirectory() as scratch:
        serving_saved_model.write_saved_model(model, tokenizer, answers, scratch)
        try:
            converter_16x8(scratch, samples).convert()
            print("1. converter 16x8: converted")
        except Exception as error:
            print(f"1. converter 16x8: fails: {last_line(error)}")
        converter = converter_16x8(scratch, samples)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=None,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["ONE_HOT"]),
        )
        types = {
            t.type for op in read_ops(debugger.get_nondebug_quantized_model()) for t in op.outputs
        }
        print(f"2. debugger with ONE_HOT float: activation types {sorted(types)}")
        converter = converter_16x8(scratch, samples)
        converter._experimental_calibrate_only = True
        calibrated = converter.convert()

    float_nodes = []
    flatbuffer = None
    while len(float_nodes) <= args.max_float_nodes:
        flatbuffer, log = mlir_quantize_int16(calibrated, float_nodes)
        if flatbuffer is not None:
            break
        match = re.search(r'loc\("([^"]+)"\): error: (.*)', log)
        if not match:
            print(f"3. MLIR int16: fails: {log.strip()[-300:]}")
            return
        print(f"3. MLIR int16: {match.group(1)}: {match.group(2)[:120]} -> kept float")
        float_nodes.append(match.group(1))
    if flatbuffer is None:
        print(f"3. MLIR int16: still failing after {len(float_nodes)} float nodes")
        return
    kinds = collections.Counter(op.outputs[0].type for op in read_ops(flatbuffer))
    print(f"3. MLIR int16: quantized with {len(float_nodes)} float nodes; op outputs {dict(kinds)}")
    keras_answers = model.predict(inputs, verbose=0).argmax(-1)
    try:
        runner = Interpreter(model_content=flatbuffer).get_signature_runner()
        images = inputs["images"].astype(np.float32)
        lite = [
            runner(images=images[i : i + 1], token_ids=inputs["token_ids"][i : i + 1])[
                "probabilities"
            ].argmax()
            for i in range(len(images))
        ]
        agreement = np.mean(np.array(lite) == keras_answers)
        print(f"3. MLIR int16: runs; argmax agreement with Keras {agreement:.3f}")
    except Exception as error:
        print(f"3. MLIR int16: ai-edge-litert refuses it: {last_line(error)}")


if __name__ == "__main__":
    main()
