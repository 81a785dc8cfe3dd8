"""Shared helpers of the fleet tests: a fixed catalog and fleet files built from text."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from launcher.fleet.load import load_fleet_text
from launcher.fleet.planner import plan_fleet
from launcher.fleet.types import FleetPlan, FleetRequest
from registry.catalog import Catalog, load_catalog

#: Models copied from catalog.yaml plus Llama 3.1 8B/70B; H100, A100, L40S, L4, V100 (figures from the
#: accelerator reference). The fleet tests use it so they do not move when catalog.yaml grows.
FLEET_CATALOG = Path(__file__).parent / "data" / "fleet_catalog.yaml"
#: An overlay with an A100-40GB and an AMD MI300X, for the fleet tests that need them.
FLEET_OVERLAY = Path(__file__).parent / "data" / "fleet_overlay.yaml"
GIB = 2**30


@lru_cache(maxsize=1)
def fleet_catalog() -> Catalog:
    """The fixed test catalog with the fleet tests' overlay (no user overlay)."""
    return load_catalog(FLEET_CATALOG, overlay=FLEET_OVERLAY)


def request_from(text: str) -> FleetRequest:
    """A FleetRequest from fleet.yaml text, against the test catalog."""
    return load_fleet_text(text, fleet_catalog())


def plan_from(text: str) -> FleetPlan:
    """The plan of fleet.yaml text, against the test catalog."""
    return plan_fleet(request_from(text))


def nodes_yaml(*groups: str) -> str:
    """A `nodes:` section from 'name accelerator gpus_per_node count [nvlink|pcie]' lines."""
    out = ["nodes:"]
    for spec in groups:
        name, acc, gpus, count, *link = spec.split()
        out += [
            f"  - name: {name}",
            f"    accelerator: {acc}",
            f"    gpus_per_node: {gpus}",
            f"    count: {count}",
        ]
        out += ["    ram: 1TB", "    cpus: 64"]
        if link:
            out.append(f"    nvlink: {'true' if link[0] == 'nvlink' else 'false'}")
    return "\n".join(out) + "\n"
