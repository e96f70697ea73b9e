"""Where the operator image is, and whether podman can run it here.

`make image` (hack/image/build.sh) builds the image into podman's local storage and records its
reference in ``$RWSCALER_CACHE/image/ref``. The e2e tier (tests/e2e) and the chart's
security-context check run it through hack/image/run-in-cluster.sh or `podman run` with the
flags this machine needs (`PODMAN`, `ULIMITS`).
"""

from __future__ import annotations

import shutil
import subprocess

from .cluster import cache_dir

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


def podman_available() -> tuple[bool, str]:
    """(True, "") when podman and runc are installed, else (False, the make target to run)."""
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if missing:
        return False, f"no {' or '.join(missing)}: run `make image-deps` (Debian's podman, runc)"
    return True, ""


def image_ref() -> str | None:
    """The reference `make image` recorded, if that image is in podman's storage."""
    ref_file = cache_dir() / "image" / "ref"
    if not ref_file.is_file() or shutil.which("podman") is None:
        return None
    ref = ref_file.read_text().strip()
    exists = subprocess.run([*PODMAN, "image", "exists", ref], capture_output=True, check=False)
    return ref if exists.returncode == 0 else None


def podman_run(ref: str, *args: str, entrypoint: str | None = None, flags: tuple[str, ...] = ()) -> str:
    """`podman run --rm` of the image with this machine's flags; its stdout (stderr on failure)."""
    argv = [*PODMAN, "run", "--rm", "--network", "none", *ULIMITS, *flags]
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    done = subprocess.run([*argv, ref, *args], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"podman run {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout
