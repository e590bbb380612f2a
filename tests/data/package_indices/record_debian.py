"""Record the Debian package-index entries the driver matrix names (a maintainer's tool).

Reads Debian's real Packages indices for each Debian release in src/airig/data/drivers.yml
(the release, -updates, -backports and -security suites; contrib and non-free) and writes
debian-<N>.Packages here with the stanzas (Package, Version, Section, Source) of every name the
matrix can ask for on that release, plus python3-pynvml. tests/test_driver_matrix.py resolves
every combination against these files. Run: python tests/data/package_indices/record_debian.py
"""

from __future__ import annotations

import datetime
import lzma
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from airig import matrix
from airig.profiles import drivers

HERE = Path(__file__).parent
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEEP = ("Package", "Version", "Section", "Source")


def wanted(distro: str) -> set[str]:
    names = {drivers()["nvml_python_package"]}
    for combo in matrix.combinations():
        if combo[0] == distro and combo[1] == "distro":
            r = matrix.resolve(*combo)
            names.update(r.packages + r.module_packages + [r.nvml_library_package])
    return names


def stanzas(url: str) -> list[dict[str, str]]:
    with urllib.request.urlopen(url, timeout=60) as resp:
        text = lzma.decompress(resp.read()).decode()
    out = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            if key in KEEP:
                fields[key] = value
        if fields:
            out.append(fields)
    return out


def main() -> None:
    today = datetime.date.today().isoformat()
    for distro, info in drivers()["distros"].items():
        if info["family"] != "debian":
            continue
        suite, names = info["suite"], wanted(distro)
        urls = [
            f"{MIRROR}/dists/{s}/{c}/binary-amd64/Packages.xz"
            for s in (suite, f"{suite}-updates", f"{suite}-backports")
            for c in ("contrib", "non-free")
        ] + [
            f"{SECURITY}/dists/{suite}-security/{c}/binary-amd64/Packages.xz"
            for c in ("contrib", "non-free")
        ]
        lines = [
            f"# Debian {suite}: entries of Debian's real Packages indices for the names the",
            f"# driver matrix asks for, recorded {today} by record_debian.py from:",
            *(f"#   {u}" for u in urls),
        ]
        for url in urls:
            for st in stanzas(url):
                if st["Package"] in names:
                    suite_of = url.split("/dists/")[1].split("/")[0]
                    lines.append("")
                    lines.extend(f"{k}: {st[k]}" for k in KEEP if k in st)
                    lines.append(f"X-Suite: {suite_of}")
        (HERE / f"{distro}.Packages").write_text("\n".join(lines) + "\n")
        print(f"{distro}: {len(names)} names")


if __name__ == "__main__":
    main()
