"""Byte quantities of the resource ("64Mi", "16M", "1048576", always strings) to bytes and back.

Written as Kubernetes writes memory quantities (binary Ki/Mi/Gi/Ti, decimal k/M/G/T), so
`objectives.maxReplicationLagBytes: 64Mi` reads like a pod's memory limit. The CRD checks the
same syntax with a pattern; `spec.py` parses it with `parse_bytes`; messages print `format_bytes`.
"""

from __future__ import annotations

import re

BYTES_PATTERN = r"^[1-9][0-9]*(Ki|Mi|Gi|Ti|k|M|G|T)?$"
_FULL = re.compile(r"^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNIT = {
    "": 1,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def parse_bytes(text: str) -> int:
    """Bytes in a quantity; raises ValueError naming the bad value and the syntax."""
    match = _FULL.match(text)
    if match is None:
        raise ValueError(
            f"invalid byte quantity {text!r}: expected a whole number with an optional unit "
            "Ki, Mi, Gi, Ti (binary) or k, M, G, T (decimal), e.g. 64Mi"
        )
    return int(match.group(1)) * _UNIT[match.group(2) or ""]


def format_bytes(value: float) -> str:
    """A short human form of a byte count, in binary units ("512B", "3.5MiB")."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.3g}{unit}"
        size /= 1024
    return f"{size:.3g}TiB"
