"""Export of a trained run: SavedModel, TFLite (float32, float16, int8), and
the checks that the result runs where it is meant to run."""
