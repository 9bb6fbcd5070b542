"""One .tflite per signature and variant: the two-part models (the
retriever's towers, the captioner's encoder and decoder step)."""

import json
import os
import tempfile

from simmim_tf.atomic_files import write_atomically
from simmim_tf.console import step
from simmim_tf.export.gpu_compatibility import gpu_delegate_problems
from simmim_tf.export.tflite_conversion import CALIBRATED, FLOAT_OPS_IN_INT8, convert
from simmim_tf.training.run_config import RunConfig

GPU_VARIANTS = ("float32", "float16")


def calibration_data(run_dir, data_dir, variants):
    """The data folder int8 calibration reads (`data_dir`, or the one the
    run trained on), or None when no variant is calibrated."""
    if not set(CALIBRATED) & set(variants):
        return None
    return data_dir or RunConfig.load(os.path.join(run_dir, "run_config.json")).data


def export_signatures(archive, out_dir, meta_name, meta, formats, variants, **conversion):
    """Writes `archive` as OUT/saved_model (`saved_model` in `formats`;
    otherwise a temporary conversion source) and, with `tflite` in
    `formats`, each signature in each variant (`convert_signatures`, which
    `conversion` is passed to) and then the sidecar OUT/`meta_name` holding
    `meta`.

    The sidecar vouches for the files written before it: removed first and
    written last, so that a kill or files left from another export are never
    taken for this model's. Returns `convert_signatures`'s report.
    """
    os.makedirs(out_dir, exist_ok=True)
    meta_path = os.path.join(out_dir, meta_name)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    report = {"files": {}, "gpu_delegate_problems": {}}
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
        saved_model = os.path.join(out_dir if "saved_model" in formats else scratch, "saved_model")
        archive.write_out(saved_model, verbose=False)
        if "tflite" not in formats:
            return report
        report = convert_signatures(saved_model, out_dir, variants, **conversion)
    write_atomically(meta_path, json.dumps({**meta, "variants": list(variants)}, indent=1))
    return report


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
