"""One .tflite per signature and variant: the two-part models (the
retriever's towers, the captioner's encoder and decoder step)."""

import os

from simmim_tf.atomic_files import write_atomically
from simmim_tf.console import step
from simmim_tf.export.gpu_compatibility import gpu_delegate_problems
from simmim_tf.export.tflite_conversion import FLOAT_OPS_IN_INT8, convert

GPU_VARIANTS = ("float32", "float16")


def convert_signatures(saved_model, out_dir, variants, signatures, samples, file_name, text_part):
    """Converts each of `signatures` of `saved_model` to each variant and
    writes OUT/`file_name(variant, signature)`.

    samples: {signature: calibration samples} for the calibrated variants.
    text_part: the signature that reads token ids, whose int8 model keeps
        `FLOAT_OPS_IN_INT8` in float (the others are fully integer).

    Returns {"files": {name: bytes}, "gpu_delegate_problems": {variant: [...]}}.
    """
    report = {"files": {}, "gpu_delegate_problems": {}}
    for variant in variants:
        problems = []
        for signature in signatures:
            with step(f"converting {variant}, {signature}"):
                flatbuffer = convert(
                    saved_model,
                    variant,
                    samples.get(signature),
                    signature=signature,
                    float_ops=FLOAT_OPS_IN_INT8 if signature == text_part else (),
                )
            name = file_name(variant, signature)
            write_atomically(os.path.join(out_dir, name), flatbuffer)
            report["files"][name] = len(flatbuffer)
            if variant in GPU_VARIANTS:
                problems += [f"{signature}: {p}" for p in gpu_delegate_problems(flatbuffer)]
        if variant in GPU_VARIANTS:
            report["gpu_delegate_problems"][variant] = problems
    return report
