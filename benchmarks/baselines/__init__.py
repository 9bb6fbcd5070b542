"""Relational-reasoning baselines of Santoro et al. 2017 for side-by-side
benchmarks. Not part of the package: simmim_tf does not depend on them."""
