"""Data sets: the package's generators and the on-disk question format."""
