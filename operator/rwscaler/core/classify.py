"""The workload class from the read:write QPS ratio (seed section 1, gaps closed in DESIGN.md).

r > 100 ReadDominated; 10 <= r <= 100 ReadHeavy; 1 <= r < 10 Mixed; 0.1 <= r < 1 WriteHeavy;
r < 0.1 WriteDominated. No writes at all with reads is ReadDominated; no traffic at all is Idle;
an unknown side is Unknown.
"""

from __future__ import annotations

from enum import StrEnum


class WorkloadClass(StrEnum):
    READ_DOMINATED = "ReadDominated"
    READ_HEAVY = "ReadHeavy"
    MIXED = "Mixed"
    WRITE_HEAVY = "WriteHeavy"
    WRITE_DOMINATED = "WriteDominated"
    IDLE = "Idle"
    UNKNOWN = "Unknown"


def read_write_ratio(read_qps: float | None, write_qps: float | None) -> float | None:
    """reads / writes; +inf when there are reads but no writes; None when unknown or idle."""
    if read_qps is None or write_qps is None:
        return None
    if write_qps <= 0:
        return float("inf") if read_qps > 0 else None
    return read_qps / write_qps


def classify(read_qps: float | None, write_qps: float | None) -> WorkloadClass:
    if read_qps is None or write_qps is None:
        return WorkloadClass.UNKNOWN
    ratio = read_write_ratio(read_qps, write_qps)
    if ratio is None:
        return WorkloadClass.IDLE
    if ratio > 100:
        return WorkloadClass.READ_DOMINATED
    if ratio >= 10:
        return WorkloadClass.READ_HEAVY
    if ratio >= 1:
        return WorkloadClass.MIXED
    if ratio >= 0.1:
        return WorkloadClass.WRITE_HEAVY
    return WorkloadClass.WRITE_DOMINATED
