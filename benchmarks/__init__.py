"""Experiments beside the library: each script measures one question and
writes its result under benchmarks/results. Run them from the repository
root as modules, e.g. `python -m benchmarks.ablations --help`."""
