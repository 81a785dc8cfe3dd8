"""How long `berth fleet plan` takes and how much memory it holds on large fleets (issue 12 targets).

Run:  python -m bench.fleet [--repeat N]

Cases (targets on the 2-core development machine):
  fits:        100 workloads on 10,000 nodes that carry them        planner ≤ 1 s and ≤ 200 MB
  too-small:   the same 100 workloads at 10 times the load on the same nodes (short: alternatives, additions)
                                                                    planner ≤ 1 s and ≤ 200 MB
  concurrency: one model at concurrency 10,000,000 on 1,000 nodes   planner ≤ 0.5 s
  many groups: 50 node groups of 2,000 nodes (100,000 nodes)        no target (the issue's run was killed at 90 s)
The planner's time is the median of --repeat runs of plan_fleet alone (the request already read), as CPU time of
this process (the figure the targets are for: the development machine's 2 cores are shared, so wall-clock time
there mostly measures the neighbours) and as wall-clock time; its memory is tracemalloc's peak of one more run
(traced separately, as tracing slows Python down). Reading the YAML, the
text report, the JSON and the Ray Serve export are timed too, for the whole command's picture.

Uses the fixed test catalog (tests/data/fleet_catalog.yaml: Llama 3.1 8B/70B, Mixtral, Falcon, Gemma 2,
DeepSeek-V3; H100, A100, L40S, L4) so the figures do not move when catalog.yaml grows.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import yaml

from bench._common import MiB
from launcher.fleet.export import export_text
from launcher.fleet.load import load_fleet_text
from launcher.fleet.planner import plan_fleet
from launcher.fleet.report import plan_text, plan_to_dict
from launcher.fleet.types import FleetPlan, FleetRequest
from registry.catalog import load_catalog

CATALOG = Path(__file__).resolve().parent.parent / "tests" / "data" / "fleet_catalog.yaml"

#: (model, context, concurrency, tokens/s per user): cycled over 100 workloads with varied loads.
MODELS = [
    ("llama-8b", 8192, 64, 30.0),
    ("llama-70b", 8192, 32, 20.0),
    ("mixtral-8x7b-instruct", 32768, 16, None),
    ("falcon-7b", 2048, 48, None),
    ("gemma-2-9b-it", 8192, 40, 25.0),
    ("llama-8b", 32768, 24, None),
    ("llama-70b", 16384, 12, 15.0),
]
#: Node groups (name, accelerator, GPUs per node, share of the nodes, RAM, CPUs).
GROUPS = [
    ("h100", "h100-sxm", 8, 0.4, "2TB", 192),
    ("a100", "a100-80gb", 8, 0.3, "1TB", 128),
    ("l40s", "l40s", 4, 0.2, "512GB", 64),
    ("l4", "l4", 8, 0.1, "384GB", 96),
]


def fleet_yaml(nodes: int, workloads: int = 100, scale: int = 60) -> str:
    """`nodes` nodes in 4 groups and `workloads` models, loads multiplied by `scale`."""
    keys = ("name", "accelerator", "gpus_per_node", "count", "ram", "cpus")
    groups = [
        dict(zip(keys, (name, acc, gpus, max(1, int(nodes * share)), ram, cpus), strict=True))
        for name, acc, gpus, share, ram, cpus in GROUPS
    ]
    models = []
    for i in range(workloads - 1):
        model, context, concurrency, speed = MODELS[i % len(MODELS)]
        entry: dict[str, object] = {
            "model": model,
            "name": f"{model}-{i}",
            "context": context,
            "concurrency": concurrency * scale * (1 + i % 3),
        }
        if speed is not None:
            entry["tokens_per_s_per_user"] = speed
        models.append(entry)
    models.append({"model": "deepseek-v3", "name": "deepseek-v3", "context": 16384, "concurrency": 8 * scale})
    return yaml.safe_dump({"nodes": groups, "network": {"bandwidth_bytes_per_s": "50GB"}, "models": models})


def concurrency_yaml(concurrency: int = 10_000_000, nodes: int = 1000) -> str:
    """One model at a huge concurrency on an H100 fleet far too small for it."""
    return yaml.safe_dump(
        {
            "nodes": [
                {"name": "h100", "accelerator": "h100-sxm", "gpus_per_node": 8, "count": nodes, "ram": "2TB"}
            ],
            "models": [{"model": "llama-8b", "context": 8192, "concurrency": concurrency}],
        }
    )


def many_groups_yaml(groups: int = 50, nodes_per_group: int = 2000) -> str:
    """Many node groups (100,000 nodes in all by default) and 49 workloads: the issue's 'groups × nodes' case."""
    accelerators = [acc for _, acc, _, _, _, _ in GROUPS]
    node_groups = [
        {
            "name": f"g{i}",
            "accelerator": accelerators[i % len(accelerators)],
            "gpus_per_node": 8,
            "count": nodes_per_group,
            "ram": "1TB",
        }
        for i in range(groups)
    ]
    models = [
        {"model": model, "name": f"{model}-{i}", "context": context, "concurrency": concurrency * 20}
        for i, (model, context, concurrency, _) in enumerate(MODELS * 7)
    ]
    return yaml.safe_dump({"nodes": node_groups, "models": models})


def _timed(request: FleetRequest, repeat: int) -> tuple[list[float], list[float], FleetPlan]:
    """(CPU seconds, wall seconds) of each run, and the plan."""
    cpu, wall = [], []
    plan = None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        plan = plan_fleet(request)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    assert plan is not None
    return cpu, wall, plan


def _peak_bytes(request: FleetRequest) -> int:
    tracemalloc.start()
    plan_fleet(request)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def run_case(name: str, text: str, repeat: int, target_s: float | None, target_mb: float | None) -> None:
    """Print one case's figures."""
    catalog = load_catalog(CATALOG, overlay=False)
    start = time.perf_counter()
    request = load_fleet_text(text, catalog)
    load_s = time.perf_counter() - start
    times, wall, plan = _timed(request, repeat)
    peak = _peak_bytes(request)
    start = time.perf_counter()
    plan_text(plan)
    json.dumps(plan_to_dict(plan))
    report_s = time.perf_counter() - start
    placed = sum(m.replicas_placed for m in plan.models)
    needed = sum(m.replicas_needed for m in plan.models)
    median = statistics.median(times)
    print(
        f"{name}: {len(plan.nodes):,} nodes, {plan.total_gpus:,} GPUs, {len(plan.models)} workloads; "
        f"replicas {placed:,} placed of {needed:,} needed; {plan.used_gpus:,} GPUs used, "
        f"{plan.missing_gpus:,} missing; complete={plan.complete}"
    )
    memory = f", peak {peak / MiB:.1f} MiB traced" + (f" (target ≤ {target_mb:g} MB)" if target_mb else "")
    print(
        f"  planner: median {median * 1000:.1f} ms CPU (min {min(times) * 1000:.1f}; wall median "
        f"{statistics.median(wall) * 1000:.1f} ms; {repeat} runs"
        + (f"; target ≤ {target_s * 1000:.0f} ms" if target_s else "")
        + f"){memory}"
    )
    export = ""
    if any(m.replicas_placed for m in plan.models):
        start = time.perf_counter()
        export_text(plan, "ray-serve", allow_partial=True)
        export = f", ray-serve export {(time.perf_counter() - start) * 1000:.1f} ms"
    print(f"  read YAML {load_s * 1000:.1f} ms, text + JSON report {report_s * 1000:.1f} ms{export}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    run_case("fits (100 workloads, 10,000 nodes)", fleet_yaml(10_000), args.repeat, 1.0, 200)
    run_case(
        "too-small (100 workloads ×10 load, 10,000 nodes)",
        fleet_yaml(10_000, scale=600),
        args.repeat,
        1.0,
        200,
    )
    run_case("concurrency 10,000,000 (1 workload, 1,000 nodes)", concurrency_yaml(), args.repeat, 0.5, None)
    run_case("50 groups × 2,000 nodes (49 workloads, no target)", many_groups_yaml(), 3, None, None)


if __name__ == "__main__":
    main()
