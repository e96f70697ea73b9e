"""Resolve the command line's choices (scenario or trace, workload, model) and run policies.

Called by command_simulate.py and command_bench.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from rwscaler.core.spec import ReadWriteWorkload, ReadWriteWorkloadSpec
from rwscaler.sim.engine import Result, simulate
from rwscaler.sim.keda_qps import NoTargetError
from rwscaler.sim.model import ModelParams
from rwscaler.sim.scenarios import DEFAULT_SCENARIO, Scenario, load_csv, scenario

DEFAULT_WORKLOAD = Path(__file__).with_name("default-workload.yaml")


class UsageError(ValueError):
    """A choice on the command line that cannot be used; the message says why."""


def load_workload(path: Path | None) -> ReadWriteWorkloadSpec:
    source = path or DEFAULT_WORKLOAD
    try:
        data = yaml.safe_load(source.read_text())
        return ReadWriteWorkload.model_validate(data).spec
    except OSError as err:
        raise UsageError(f"{source}: cannot read: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise UsageError(f"{source}: not YAML: {err}") from err
    except ValidationError as err:
        raise UsageError(f"{source}: not a valid ReadWriteWorkload:\n{err}") from err


def load_model(path: Path | None) -> ModelParams:
    if path is None:
        return ModelParams()
    try:
        return ModelParams.from_yaml(path)
    except OSError as err:
        raise UsageError(f"{path}: cannot read: {err.strerror}") from err
    except (yaml.YAMLError, ValidationError, ValueError) as err:
        raise UsageError(f"{path}: not a valid model:\n{err}") from err


def load_scenario(name: str | None, trace: Path | None) -> Scenario:
    try:
        return load_csv(trace) if trace is not None else scenario(name or DEFAULT_SCENARIO)
    except ValueError as err:
        raise UsageError(str(err)) from err


def run_policies(
    scn: Scenario, policies: Sequence[str], spec: ReadWriteWorkloadSpec, params: ModelParams
) -> list[Result]:
    try:
        return [simulate(scn, p, spec, params) for p in policies]
    except NoTargetError as err:
        raise UsageError(str(err)) from err
