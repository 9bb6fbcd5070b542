"""This machine in one line, for the records that reports and benchmarks write.

A figure means little without the machine it was measured on, and two facts
about it move ours most. An int8 dot-product instruction (x86's AVX-512 VNNI
or AVX-VNNI, Arm's dot product or i8mm) decides whether an int8 model beats
float32: XNNPACK's int8 matrix products use it where the CPU has one, and
without it (an AVX2-only x86 CPU) they are slower than its float32 ones
(docs/export.md, "Which variant is fastest depends on the CPU"). The memory
allocator decides how much of training's time goes to the kernel: with
glibc's malloc up to 45% on some machines, with tcmalloc a few percent
(docs/training.md, "tcmalloc").
"""

import os
import platform

# /proc/cpuinfo's names: x86 "flags", aarch64 "Features".
INT8_DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
VECTOR_UNITS = ("avx512f", "avx2", "avx", "sve", "asimd")


def read_cpuinfo(path="/proc/cpuinfo"):
    """The text of /proc/cpuinfo, or "" where there is none (macOS, Windows)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cpu_model(cpuinfo):
    """The CPU's name ("AMD EPYC 9R14"), or the architecture where cpuinfo has none."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo):
    """The first processor's instruction-set flags (x86) or features (Arm)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def int8_dot_product(flags):
    """The int8 dot-product instructions among `flags` (empty: none)."""
    return [name for name in INT8_DOT_PRODUCT if name in flags]


def allocator(maps_path="/proc/self/maps"):
    """ "tcmalloc" or "jemalloc" where one is loaded (LD_PRELOAD), "glibc
    malloc" on other Linux processes, None where /proc is missing."""
    try:
        with open(maps_path) as f:
            maps = f.read()
    except OSError:
        return None
    for name in ("tcmalloc", "jemalloc"):
        if f"lib{name}" in maps:
            return name
    return "glibc malloc"


def _cores():
    """ "2 cores", or "2 cores (1 usable)" where this process is pinned (taskset)."""
    cores = f"{os.cpu_count()} cores"
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < os.cpu_count():
        cores += f" ({len(os.sched_getaffinity(0))} usable)"
    return cores


def describe(cpuinfo=None):
    """ "x86_64 AMD EPYC, 2 cores, avx2, no int8 dot product, tcmalloc, Python 3.11.7"."""
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = cpu_flags(cpuinfo)
    vector = next((name for name in VECTOR_UNITS if name in flags), None)
    dot = int8_dot_product(flags)
    parts = [f"{platform.machine()} {cpu_model(cpuinfo)}", _cores()]
    if flags:
        parts.append(vector or "no SIMD flags")
        parts.append("int8 dot product: " + "/".join(dot) if dot else "no int8 dot product")
    memory = allocator()
    if memory:
        parts.append(memory)
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)
