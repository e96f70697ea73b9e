"""`make calibrate`: measure real PostgreSQL 15 here and fit the simulator's model to it.

Starts a `PgEnv` (tests/support/pgenv.py: a primary and one streaming replica, no Prometheus)
and runs pgbench straight at the servers (no pooler), each level for a few seconds:

- reads: `pgbench -S` (one indexed SELECT per transaction) on the replica, unthrottled with 8
  clients to find its saturation throughput, then throttled (`--rate`) at fractions of it, with
  a per-transaction log from which the p99 is taken (with `--rate`, pgbench counts a
  transaction's latency from its scheduled start, so waiting in the queue is included, as in
  the model);
- writes: one autocommit UPDATE per transaction on the primary, the same way;
- replay: during the primary's saturated write run, the replica's replay lag in WAL bytes,
  sampled every 0.25 s, and how long it takes to catch up after the load stops.

Then `rwscaler.sim.calibration` fits capacity and idle p99 per side, prints predicted against
measured, and (with `--write FILE`) writes the fitted parameters as a model file for
`rwscaler simulate|bench --model FILE`.

    python -m tests.support.calibrate [--write operator/rwscaler/sim/models/pg15-local.yaml]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rwscaler.sim.calibration import LoadPoint, SideFit, fit_side, render
from rwscaler.sim.model import ModelParams

from .pgenv import PgEnv, pgenv_available
from .ports import LOOPBACK

READ_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 1.1)
WRITE_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.85, 0.95)
LEVEL_SECONDS = 6
SATURATION_SECONDS = 8
CLIENTS = 8
WARMUP_S = 1.0  # the first second of each level (connections, caches) is not counted


def _pgbench(
    env: PgEnv, which: str, *, script: str | None, rate: float | None, seconds: int, logdir: Path
) -> tuple[float, float]:
    """(served transactions/s, p99 ms) of one pgbench run straight at a server."""
    inst = env.instance(which)
    prefix = logdir / f"pgb-{time.monotonic_ns()}"
    argv = ["pgbench", "-n", "-h", LOOPBACK, "-p", str(inst.port), "-U", env.superuser]
    argv += ["-c", str(CLIENTS), "-j", "2", "-T", str(seconds), "-l", f"--log-prefix={prefix}"]
    if rate is not None:
        argv += ["-R", f"{rate:.1f}"]
    script_file = None
    if script is None:
        argv.append("-S")
    else:
        script_file = logdir / "script.sql"
        script_file.write_text(script)
        argv += ["-f", str(script_file)]
    argv.append(env.database)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    rows: list[tuple[float, int]] = []
    for log in logdir.glob(f"{prefix.name}*"):
        for line in log.read_text().splitlines():
            # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
            fields = line.split()
            if len(fields) >= 6:
                at = int(fields[4]) + int(fields[5]) / 1e6
                rows.append((at, int(fields[2])))
        log.unlink()
    if not rows:
        raise RuntimeError(f"pgbench logged no transaction:\n{done.stdout}")
    first_epoch = min(at for at, _ in rows)
    counted = [(at, us) for at, us in rows if at >= first_epoch + WARMUP_S]
    latencies_us = sorted(us for _, us in counted)
    span = max(at for at, _ in counted) - min(at for at, _ in counted)
    served = len(counted) / span if span > 0 else float("nan")
    p99_us = latencies_us[min(len(latencies_us) - 1, int(0.99 * len(latencies_us)))]
    return served, p99_us / 1000.0


def _saturation(env: PgEnv, which: str, script: str | None, logdir: Path) -> float:
    served, _ = _pgbench(env, which, script=script, rate=None, seconds=SATURATION_SECONDS, logdir=logdir)
    return served


def measure_side(
    env: PgEnv, which: str, script: str | None, fractions: tuple[float, ...], logdir: Path, seconds: int
) -> tuple[float, list[LoadPoint]]:
    saturation = _saturation(env, which, script, logdir)
    points = []
    for fraction in fractions:
        offered = fraction * saturation
        served, p99_ms = _pgbench(
            env, which, script=script, rate=offered, seconds=LEVEL_SECONDS, logdir=logdir
        )
        points.append(LoadPoint(offered, served, p99_ms))
        print(
            f"  {which}: offered {offered:,.0f}/s served {served:,.0f}/s p99 {p99_ms:.3f} ms", file=sys.stderr
        )
    return saturation, points


def _lag_bytes(env: PgEnv) -> int:
    replay = env.sql(env.replica_name(0), "SELECT pg_last_wal_replay_lsn()::text")[0][0]
    diff = env.sql(env.primary_name, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (replay,))
    return int(diff[0][0])


def measure_replay(env: PgEnv, logdir: Path) -> tuple[float, int, float]:
    """(writes/s, max replay lag bytes, seconds to catch up after the load) at the primary's saturation."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(_lag_bytes(env))
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    served, _ = _pgbench(
        env,
        env.primary_name,
        script=env.write_script(),
        rate=None,
        seconds=SATURATION_SECONDS,
        logdir=logdir,
    )
    stop.set()
    sampler.join()
    ended = time.monotonic()
    while _lag_bytes(env) > 0 and time.monotonic() - ended < 60:
        time.sleep(0.05)
    return served, max(samples, default=0), time.monotonic() - ended


def model_yaml(read: SideFit, write: SideFit, replay_tps: float, header: str) -> str:
    params = ModelParams(
        replicaReadCapacity=round(read.capacity_tps, 1),
        readBaseLatencyMs=round(read.base_ms, 4),
        primaryWriteCapacity=round(write.capacity_tps, 1),
        writeBaseLatencyMs=round(write.base_ms, 4),
        replicaApplyCapacity=round(max(replay_tps, ModelParams().replicaApplyCapacity), 1),
    )
    fitted = ("replicaReadCapacity", "readBaseLatencyMs", "primaryWriteCapacity", "writeBaseLatencyMs",
              "replicaApplyCapacity")  # fmt: skip
    body = "".join(f"{key}: {getattr(params, key)}\n" for key in fitted)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, metavar="FILE.yaml", help="write the fitted model here")
    parser.add_argument(
        "--seconds", type=int, default=LEVEL_SECONDS, help=f"seconds per load level (default {LEVEL_SECONDS})"
    )
    args = parser.parse_args(argv)
    ok, reason = pgenv_available()
    if not ok:
        print(f"calibrate: {reason}", file=sys.stderr)
        return 2
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="calibrate-") as tmp,
        PgEnv(replicas=1, with_prometheus=False) as env,
    ):
        logdir = Path(tmp)
        print("measuring reads on the replica ...", file=sys.stderr)
        read_sat, read_points = measure_side(
            env, env.replica_name(0), None, READ_FRACTIONS, logdir, args.seconds
        )
        print("measuring writes on the primary ...", file=sys.stderr)
        write_script = env.write_script()
        write_sat, write_points = measure_side(
            env, env.primary_name, write_script, WRITE_FRACTIONS, logdir, args.seconds
        )
        print("measuring replay at the primary's saturation ...", file=sys.stderr)
        replay_tps, max_lag, catch_up_s = measure_replay(env, logdir)
    read = fit_side(read_sat, read_points)
    write = fit_side(write_sat, write_points)
    print(render("reads (pgbench -S on the replica)", read))
    print(render("writes (one UPDATE per transaction on the primary)", write))
    kept_up = catch_up_s < 1.0
    print(
        f"replay at {replay_tps:,.0f} writes/s: lag at most {max_lag / 1024:,.0f} KiB, caught up "
        f"{catch_up_s:.2f} s after the load stopped ("
        + ("replay kept up: its capacity is at least the primary's" if kept_up else "replay fell behind")
        + ")"
    )
    print(f"measured in {time.monotonic() - started:.0f} s on {os.cpu_count()} cores")
    if args.write is not None:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        header = (
            f"# Fitted by `make calibrate` (tests/support/calibrate.py) on {when}: PostgreSQL 15 from\n"
            f"# Debian, primary + one streaming replica on one {os.cpu_count()}-core machine, pgbench -S\n"
            "# (reads) and one UPDATE per transaction (writes). docs/calibration.md shows predicted\n"
            "# against measured. Unlisted parameters keep their defaults (rwscaler.sim.model).\n"
        )
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(model_yaml(read, write, replay_tps if kept_up else 0.0, header))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
