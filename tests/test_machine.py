"""The machine line that reports and benchmarks write (`simmim_tf.machine`)."""

from simmim_tf import machine

# Trimmed from /proc/cpuinfo of an AVX2-only x86 CPU, an AVX-512 VNNI one and
# an Arm board.
AVX2 = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B12
flags		: fpu sse sse2 avx fma avx2 bmi2
processor	: 1
model name	: AMD EPYC 7B12
flags		: fpu sse sse2 avx fma avx2 bmi2
"""
VNNI = """processor	: 0
model name	: AMD EPYC 9R14
flags		: fpu avx avx2 avx512f avx512bw avx512_vnni avx512_bf16
"""
ARM = """processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm aes crc32 asimddp
"""


def test_an_avx2_cpu_has_no_int8_dot_product():
    line = machine.describe(AVX2)
    assert "AMD EPYC 7B12" in line
    assert "avx2" in line and "no int8 dot product" in line
    assert "cores" in line and "Python 3." in line


def test_vnni_and_arm_dot_products_are_named():
    assert "avx512f, int8 dot product: avx512_vnni" in machine.describe(VNNI)
    assert machine.int8_dot_product(machine.cpu_flags(ARM)) == ["asimddp"]
    assert ", asimd, int8 dot product: asimddp" in machine.describe(ARM)


def test_without_cpuinfo_the_line_still_names_the_machine():
    line = machine.describe("")
    assert "cores" in line and "int8" not in line


def test_the_allocator_is_named(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f10 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4\n")
    assert machine.allocator(str(maps)) == "tcmalloc"
    maps.write_text("7f00-7f10 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert machine.allocator(str(maps)) == "glibc malloc"
    assert machine.allocator(str(tmp_path / "absent")) is None
