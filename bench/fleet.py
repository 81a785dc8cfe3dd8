"""Planning 100 workloads on a 1,000-node fleet: how long `berth fleet plan` takes (target: under 2 s).

Run:  python -m bench.fleet [--repeat N]

Uses the fixed test catalog (tests/data/fleet_catalog.yaml: Llama 3.1 8B/70B, Mixtral, Falcon, Gemma 2,
DeepSeek-V3; H100, A100, L40S, L4) so the figures do not move when catalog.yaml grows. Times the whole
path the CLI takes after the catalog is loaded: reading and checking the YAML, planning, rendering the text
and the JSON, and the Ray Serve export.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import yaml

from launcher.fleet.export import export_text
from launcher.fleet.load import load_fleet_text
from launcher.fleet.planner import plan_fleet
from launcher.fleet.report import plan_text, plan_to_dict
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


def fleet_yaml(workloads: int = 100, scale: int = 12) -> str:
    """A 1,000-node fleet (4 node groups) and `workloads` models, loads multiplied by `scale`."""
    groups = [  # name, accelerator, GPUs per node, nodes, RAM, CPUs
        ("h100", "h100-sxm", 8, 400, "2TB", 192),
        ("a100", "a100-80gb", 8, 300, "1TB", 128),
        ("l40s", "l40s", 4, 200, "512GB", 64),
        ("l4", "l4", 8, 100, "384GB", 96),
    ]
    keys = ("name", "accelerator", "gpus_per_node", "count", "ram", "cpus")
    nodes = [dict(zip(keys, group, strict=True)) for group in groups]
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
    return yaml.safe_dump({"nodes": nodes, "network": {"bandwidth_bytes_per_s": "50GB"}, "models": models})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--scale", type=int, default=12, help="Load multiplier: 12 uses ~60%% of the fleet, 20 overfills it."
    )
    args = parser.parse_args()
    catalog = load_catalog(CATALOG, overlay=False)
    text = fleet_yaml(scale=args.scale)
    times: dict[str, list[float]] = {"load": [], "plan": [], "report": [], "export": []}
    plan = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        request = load_fleet_text(text, catalog)
        t1 = time.perf_counter()
        plan = plan_fleet(request)
        t2 = time.perf_counter()
        plan_text(plan)
        json.dumps(plan_to_dict(plan))
        t3 = time.perf_counter()
        export_text(plan, "ray-serve", allow_partial=True)
        t4 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            value_list = times[key]
            value_list.append(value)
    assert plan is not None
    total = [sum(parts) for parts in zip(*times.values(), strict=True)]
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        f"fleet: {len(plan.nodes)} nodes, {plan.total_gpus} GPUs; {len(plan.models)} workloads; "
        f"{plan.used_gpus} GPUs used, {plan.free_gpus} free, {plan.missing_gpus} missing; "
        f"replicas placed {sum(m.replicas_placed for m in plan.models)}"
    )
    for key, values in times.items():
        print(f"{key:>7}: median {statistics.median(values) * 1000:8.1f} ms  (min {min(values) * 1000:.1f})")
    print(f"  total: median {statistics.median(total) * 1000:8.1f} ms  (target < 2000 ms)")


if __name__ == "__main__":
    main()
