"""TEST DOUBLE of NVIDIA's libnvidia-ml.so.1: built from fake_nvml.c at test time.

The real pynvml loads it, through LD_LIBRARY_PATH in subprocesses, or, inside the pytest
process, because it was loaded first under the soname libnvidia-ml.so.1 (the dynamic loader
then hands pynvml's dlopen("libnvidia-ml.so.1") the same object). Fixtures: ../nvml_fixtures.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("fake_nvml.c")
FIXTURES = Path(__file__).resolve().parent.parent / "nvml_fixtures"


def nvml_include_dir() -> Path:
    """The real nvml.h, from the PyPI package nvidia-nvml-dev."""
    import nvidia  # namespace package of NVIDIA's PyPI wheels

    for root in nvidia.__path__:
        for header in sorted(Path(root).glob("*/include/nvml.h")):
            return header.parent
    raise RuntimeError("nvml.h not found: pip install nvidia-nvml-dev")


def build(out_dir: Path) -> Path:
    """Compile the double into ``out_dir/libnvidia-ml.so.1`` and return its path."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("a C compiler (cc/gcc) is needed to build the NVML test double")
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / "libnvidia-ml.so.1"
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-Werror",
            "-Wextra",
            f"-I{nvml_include_dir()}",
            "-Wl,-soname,libnvidia-ml.so.1",
            "-o",
            str(lib),
            str(SOURCE),
        ],
        check=True,
    )
    return lib
