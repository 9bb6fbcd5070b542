"""Quantize a trained run to TFLite: the script form of `simmim-tf export`.

    python export/quantize.py --run RUN --out EXP --quantize float16,int8

Writes EXP/saved_model, EXP/model_<variant>.tflite and EXP/simmim_meta.json.
int8 is calibrated on the run's training data (or --data) and integer but
for the op types of --int8-float-ops (default ONE_HOT); int8_mixed is int8
in the fully connected and convolution layers only. `--help` lists all.
"""

import sys

from simmim_tf.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
