"""llama.cpp's CUDA build with the toolkit the role installs (issue 11 item 9): nvcc from
NVIDIA's wheels, GGML_CUDA=ON for the built-in profiles' sm_120 (as 120a), and the binary
carries device code for that architecture. TEST LIMIT: no GPU here; the binary is not run."""

import re
import struct

BUILD = "/opt/airig/llama.cpp/0.3.36-0c1e570-cuda120"
TOOLKIT = "/opt/airig/cuda-13.0/root"
LOG = "/opt/airig/llama.cpp/build/0.3.36-0c1e570-cuda120.log"


def test_toolkit_from_the_wheels(host):
    out = host.check_output(f"{TOOLKIT}/bin/nvcc --version")
    assert "release 13.0" in out
    for name in (
        "include/cuda_runtime.h",
        "include/cublas_v2.h",
        "lib/libcudart.so",
        "lib/libcublas.so",
    ):
        assert host.file(f"{TOOLKIT}/{name}").exists, name
    # Installed with --require-hashes from the role's requirements
    assert "--hash=sha256:" in host.file("/opt/airig/cuda-13.0/requirements.txt").content_string


def test_build_names_the_architecture(host):
    """llama.cpp turns the profile's 120 into 120a (Blackwell's FP4 instructions); nvcc's flags
    compile SASS for sm_120a and PTX for compute_120a."""
    log = host.file(LOG).content_string
    assert re.search(r"Using CMAKE_CUDA_ARCHITECTURES=120a\b", log), log[-3000:]
    flags = host.file(f"{BUILD.replace('/0.3.36', '/build/0.3.36')}/ggml/src/ggml-cuda/CMakeFiles/ggml-cuda.dir/flags.make")
    assert "--generate-code=arch=compute_120a,code=[compute_120a,sm_120a]" in flags.content_string


def test_binary_links_cuda_and_holds_sm_120a(host):
    binary = f"{BUILD}/bin/llama-server"
    assert host.file(binary).is_file
    needed = host.check_output(f"readelf -d {binary}")
    for lib in ("libcudart.so.13", "libcublas.so.13", "libcuda.so.1"):
        assert lib in needed, lib
    assert fatbin_archs(host, binary) == {120}


def fatbin_archs(host, binary):
    """The SM architectures of the cubins in the binary's .nv_fatbin section (NVIDIA's fat
    binary container: a 16-byte header, then entries whose header holds kind and arch)."""
    host.check_output(f"objcopy -O binary --only-section=.nv_fatbin {binary} /tmp/fatbin")
    data = host.file("/tmp/fatbin").content
    archs = set()
    off = 0
    while off + 16 <= len(data):
        magic, _ver, hsize, fsize = struct.unpack_from("<IHHQ", data, off)
        if magic != 0xBA55ED50:
            off += 8
            continue
        entry, end = off + hsize, off + hsize + fsize
        while entry + 32 <= end:
            kind, _v, ehsize, esize = struct.unpack_from("<HHIQ", data, entry)
            arch = struct.unpack_from("<I", data, entry + 28)[0]
            if kind == 2:  # ELF (cubin)
                archs.add(arch)
            entry += ehsize + esize
        off = end
    return archs
