"""The exported configs against Ray's own schemas, and their placement groups on a simulated Ray cluster.

Ray is imported only here. The cluster is `ray.cluster_utils.Cluster` with logical GPUs (no real ones),
one Ray node per node the plan uses; it starts once for the module and is shut down, with its temp files,
at the end.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from launcher.fleet.export import node_resources, node_sets, ray_accelerator_type, ray_serve_yaml, rayservice
from launcher.fleet.types import FleetPlan
from tests.fleet_support import nodes_yaml, plan_from

ray = pytest.importorskip("ray")
serve_schema = pytest.importorskip("ray.serve.schema")
try:  # the public class needs vLLM installed; it subclasses this one without changes
    from ray.serve.llm import LLMConfig
except ImportError:
    try:
        from ray.llm._internal.serve.core.configs.llm_config import LLMConfig  # needs pyarrow (dev extra)
    except ImportError as err:  # pragma: no cover - depends on the environment
        pytest.skip(f"Ray Serve LLM's config classes cannot be imported: {err}", allow_module_level=True)
from ray.llm._internal.common.placement import PlacementGroupConfig  # noqa: E402

FLEET = (
    nodes_yaml("h100 h100 8 4", "l40s l40s 4 1 pcie", "a100-40 a100-40gb 4 1", "a100-80 a100 4 1")
    + """\
models:
  - model: llama-70b
    name: big-a
    context: 8192
    concurrency: 40
    accelerator: h100
  - model: llama-70b
    name: big-b
    context: 8192
    concurrency: 40
    accelerator: h100
  - model: deepseek-v3
    name: deepseek
    context: 8192
    concurrency: 8
    quantization: fp8
  - model: llama-70b
    name: big8
    context: 8192
    concurrency: 60
    accelerator: h100
  - model: llama-70b
    name: big-pcie
    context: 4096
    concurrency: 4
    accelerator: l40s
  - model: llama-8b
    name: long
    context: 65536
    concurrency: 6
    accelerator: a100-80gb
  - model: llama-8b
    name: short
    context: 4096
    concurrency: 40
    accelerator: a100-40gb
"""
)


@pytest.fixture(scope="module")
def plan() -> FleetPlan:
    result = plan_from(FLEET)
    assert result.complete
    shapes = {m.name: m.replica.shape.label for m in result.models}
    # The fleet has what misled Ray before (issue 12): two TP4 replicas listed before the TP8 one that needs a
    # whole node, a TP8×PP2 replica over two nodes, a pipeline inside a PCIe node, and an A100-80GB model that
    # Ray's own "A100" label would let onto the A100-40GB node.
    assert shapes == {
        "big-a": "TP4×PP1",
        "big-b": "TP4×PP1",
        "deepseek": "TP8×PP2",
        "big8": "TP8×PP1",
        "big-pcie": "TP1×PP4",
        "long": "TP1×PP1",
        "short": "TP2×PP1",
    }
    return result


def llm_configs(serve: dict[str, Any]) -> list[dict[str, Any]]:
    (app,) = serve["applications"]
    return app["args"]["llm_configs"]


def test_ray_serve_file_validates_with_rays_schemas(plan):
    text = ray_serve_yaml(plan)
    document = yaml.safe_load(text)
    schema = serve_schema.ServeDeploySchema.model_validate(document)
    (app,) = schema.applications
    assert app.import_path == "ray.serve.llm:build_openai_app"
    for config in llm_configs(document):
        llm = LLMConfig.model_validate(config)
        model = plan.model(llm.model_id)
        # LLMConfig does not look inside engine_kwargs: check the sizes and the context here.
        kwargs = llm.engine_kwargs
        assert kwargs["tensor_parallel_size"] * kwargs["pipeline_parallel_size"] == model.replica.shape.gpus
        assert kwargs["max_model_len"] <= model.workload.card.context_length
        assert kwargs["tensor_parallel_size"] <= plan.group(model.replica.group).gpus_per_node
        assert model.workload.card.architecture.num_attention_heads % kwargs["tensor_parallel_size"] == 0
        assert llm.accelerator_type == ray_accelerator_type(plan.group(model.replica.group).accelerator)
        assert llm.deployment_config["num_replicas"] == model.replicas_needed
        PlacementGroupConfig.model_validate(llm.placement_group_config)


def test_rayservice_serve_config_validates_too(plan):
    service = rayservice(plan)
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    serve_schema.ServeDeploySchema.model_validate(serve)
    for config in llm_configs(serve):
        LLMConfig.model_validate(config)


def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> bool:
    """Poll: Ray's view of available resources follows the raylets' periodic reports."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def replica_bundles(config: dict[str, Any]) -> tuple[list[dict[str, float]], str]:
    """The placement group Ray Serve LLM asks for per replica: VLLMEngineConfig.placement_bundles expands
    bundle_per_worker to TP × PP bundles with a small share of the accelerator_type resource, and
    LLMServer.get_deployment_options adds the replica actor (1 CPU) to the first bundle."""
    pg = PlacementGroupConfig.model_validate(config["placement_group_config"]).model_dump(exclude_unset=True)
    kwargs = config["engine_kwargs"]
    count = kwargs["tensor_parallel_size"] * kwargs["pipeline_parallel_size"]
    bundles = []
    for _ in range(count):
        bundle = {k: float(v) for k, v in pg["bundle_per_worker"].items()}
        if "accelerator_type" in config:
            bundle.setdefault(f"accelerator_type:{config['accelerator_type']}", 0.001)
        bundles.append(bundle)
    bundles[0]["CPU"] = bundles[0].get("CPU", 0.0) + 1.0
    return bundles, pg.get("strategy", "PACK")


@pytest.fixture(scope="module")
def ray_cluster(plan) -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    # Ray keeps sessions, sockets and its address file under $RAY_TMPDIR/ray: a short private directory
    # (socket paths must stay under 108 characters) removed at the end.
    temp_dir = tempfile.mkdtemp(prefix="berth-ray-", dir="/tmp")
    saved = {
        k: os.environ.pop(k)
        for k in ("RAY_ADDRESS", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED")
        if k in os.environ
    }
    os.environ.update(RAY_TMPDIR=temp_dir, RAY_USAGE_STATS_ENABLED="0")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False}
    )
    custom = node_resources(plan)
    try:
        names = {}
        for node in plan.nodes:
            if not node.stages:
                continue
            group = plan.group(node.group)
            label = ray_accelerator_type(group.accelerator)
            resources = {f"accelerator_type:{label}": 1} if label else {}
            resources.update(custom[node.name])  # what the export's header tells each node to start with
            added = cluster.add_node(
                num_cpus=2,  # the replica actor's CPU; few, so that the test machine is not asked for more
                num_gpus=group.gpus_per_node,
                resources=resources,
                object_store_memory=80 * 2**20,
            )
            names[added.node_id] = node.name
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes()
        cluster.berth_names = names  # Ray node id → planned node name
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        for key in ("RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED"):
            os.environ.pop(key, None)
        os.environ.update(saved)


def planned_gpus(plan: FleetPlan) -> dict[str, Counter[str]]:
    """GPUs the plan gives each model on each node: node name → model → GPUs."""
    out: dict[str, Counter[str]] = {}
    for node in plan.nodes:
        for stage in node.stages:
            out.setdefault(node.name, Counter())[stage.model] += len(stage.gpu_indices)
    return out


def test_the_header_starts_each_node_with_its_resources(plan):
    header = [line for line in ray_serve_yaml(plan).splitlines() if line.startswith("#")]
    for _, nodes, resources in node_sets(plan):
        (line,) = [h for h in header if h.startswith(f"#   {nodes[0]}")]
        assert f"--resources='{json.dumps(resources, separators=(',', ':'))}'" in line
    service = rayservice(plan)
    workers = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert sum(w["replicas"] for w in workers) == sum(1 for n in plan.nodes if n.stages)
    for worker in workers:
        resources = json.loads(json.loads(worker["rayStartParams"]["resources"]))
        assert all(key.startswith("berth-") for key in resources)


def _replicas_wanted(plan: FleetPlan) -> list[tuple[str, list[dict[str, float]], str]]:
    """Every replica's placement group as Ray Serve LLM would ask for it, in file order."""
    wanted = []
    for config in llm_configs(yaml.safe_load(ray_serve_yaml(plan))):
        bundles, strategy = replica_bundles(config)
        name = config["model_loading_config"]["model_id"]
        wanted += [(name, bundles, strategy)] * config["deployment_config"]["num_replicas"]
    return wanted


def _check_round(
    plan: FleetPlan, cluster: Any, wanted: list[tuple[str, list[dict[str, float]], str]], probe: bool = False
) -> None:
    """Create the placement groups in this order; every one is placed, each model on exactly the GPUs of the
    nodes the plan gave it, and every tensor-parallel group inside one node."""
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    groups = [(name, placement_group(bundles, strategy=strategy)) for name, bundles, strategy in wanted]
    try:
        ready = [pg.wait(timeout_seconds=300) for _, pg in groups]  # generous: a busy machine is slow
        assert all(ready), f"{ready.count(False)} of {len(ready)} placement groups could not be placed"
        got: dict[str, Counter[str]] = {}
        for name, pg in groups:
            tp = plan.model(name).replica.shape.tp
            nodes = Counter(
                cluster.berth_names[n] for n in placement_group_table(pg)["bundles_to_node_id"].values()
            )
            assert all(count % tp == 0 for count in nodes.values()), (name, dict(nodes))  # TP groups whole
            for node, count in nodes.items():
                got.setdefault(node, Counter())[name] += count
        assert got == planned_gpus(plan)
        if probe:  # the resources are exactly what the plan gave: one more worker of a model has no room
            extra = placement_group([{"GPU": 1.0, "berth-long": 1.0}])
            assert not extra.wait(timeout_seconds=2)
            remove_placement_group(extra)
    finally:
        for _, pg in groups:
            remove_placement_group(pg)
        total = sum(n.gpus for n in plan.nodes if n.stages)
        assert wait_until(lambda: ray.available_resources().get("GPU", 0) == total)


@pytest.mark.slow  # starts a local Ray cluster of 7 nodes
def test_ray_places_every_group_where_the_plan_says_in_any_order(plan, ray_cluster):
    wanted = _replicas_wanted(plan)
    _check_round(plan, ray_cluster, wanted, probe=True)  # file order: the two TP4 replicas before the TP8 one
    rng = random.Random(12)
    for _ in range(5):
        order = list(wanted)
        rng.shuffle(order)
        _check_round(plan, ray_cluster, order)
