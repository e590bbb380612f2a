#!/usr/bin/python3
"""The primary key fingerprint of an OpenPGP public key file (ASCII-armored or binary), as gpg
prints it: the v4 fingerprint, SHA-1 over 0x99, the two-byte length and the public-key packet
(RFC 4880, section 12.2). The nvidia_driver role checks NVIDIA's CUDA repository key against the
fingerprint airig's data pins (src/airig/data/drivers.yml) before apt trusts it, and `airig
bundle` does the same; no gpg needed on the box.

Usage: airig_key_fingerprint.py KEYFILE [EXPECTED]   prints the fingerprint; with EXPECTED,
exits 1 (saying so) when it differs."""

from __future__ import annotations

import base64
import hashlib
import re
import sys


def _dearmor(data: bytes) -> bytes:
    text = data.decode("ascii", "replace")
    m = re.search(
        r"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----",
        text,
        re.DOTALL,
    )
    if m is None:
        raise ValueError("no PGP PUBLIC KEY BLOCK in the file")
    lines = m[1].splitlines()
    # Armor headers end at the first empty line; the checksum line starts with '='.
    if "" in lines:
        lines = lines[lines.index("") + 1 :]
    body = "".join(line.strip() for line in lines if line.strip() and not line.startswith("="))
    return base64.b64decode(body, validate=True)


def _first_packet(data: bytes) -> tuple[int, bytes]:
    """(tag, body) of the first OpenPGP packet (old or new format header)."""
    if not data or not data[0] & 0x80:
        raise ValueError("not an OpenPGP packet")
    head = data[0]
    if head & 0x40:  # new format
        tag, pos = head & 0x3F, 1
        first = data[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 224:
            length, pos = ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
        elif first == 255:
            length, pos = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
        else:
            raise ValueError("partial-length public-key packet")
    else:  # old format
        tag, kind, pos = (head >> 2) & 0x0F, head & 0x03, 1
        size = {0: 1, 1: 2, 2: 4}.get(kind)
        if size is None:
            raise ValueError("indeterminate-length public-key packet")
        length, pos = int.from_bytes(data[pos : pos + size], "big"), pos + size
    body = data[pos : pos + length]
    if len(body) != length:
        raise ValueError("truncated packet")
    return tag, body


def fingerprint(data: bytes) -> str:
    """The primary key's v4 fingerprint, upper-case hex, of a key file's bytes."""
    raw = data if data[:1] and data[0] & 0x80 else _dearmor(data)
    tag, body = _first_packet(raw)
    if tag != 6:
        raise ValueError(f"the first packet is not a public key (tag {tag})")
    if body[:1] != b"\x04":
        raise ValueError(f"public key version {body[0] if body else '?'}, not 4")
    digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()
    return digest.upper()


def main(argv: list[str]) -> int:
    with open(argv[1], "rb") as f:
        data = f.read()
    try:
        found = fingerprint(data)
    except (ValueError, IndexError) as exc:
        print(f"{argv[1]}: not an OpenPGP public key ({exc})")
        return 1
    print(found)
    if len(argv) > 2 and found != argv[2].replace(" ", "").upper():
        print(f"{argv[1]}: fingerprint {found}, not the {argv[2]} airig's data pins")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
