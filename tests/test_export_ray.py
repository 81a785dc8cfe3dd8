"""The exported configs against Ray's own schemas, and their placement groups on a simulated Ray cluster.

Ray is imported only here. The cluster is `ray.cluster_utils.Cluster` with logical GPUs (no real ones),
one Ray node per node the plan uses; it starts once for the module and is shut down, with its temp files,
at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from launcher.fleet.export import ray_accelerator_type, ray_serve_yaml, rayservice
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
    nodes_yaml("h100 h100 8 4", "l40s l40s 4 2 pcie")
    + """\
models:
  - model: deepseek-v3
    name: deepseek
    context: 8192
    concurrency: 8
    quantization: fp8
  - model: llama-70b
    name: big
    context: 8192
    concurrency: 100
    accelerator: h100
  - model: llama-70b
    name: big-pcie
    context: 4096
    concurrency: 4
    accelerator: l40s
  - model: llama-8b
    name: chat
    context: 8192
    concurrency: 150
    tokens_per_s_per_user: 40
  - model: falcon-7b
    name: falcon
    context: 2048
    concurrency: 600
    accelerator: l40s
"""
)


@pytest.fixture(scope="module")
def plan() -> FleetPlan:
    result = plan_from(FLEET)
    assert result.complete
    shapes = {m.name: m.replica.shape.label for m in result.models}
    # The fleet exercises every kind of placement group the export writes.
    assert shapes == {
        "deepseek": "TP8×PP2",  # PACK across two nodes
        "big": "TP4×PP1",  # STRICT_PACK, tensor parallel
        "big-pcie": "TP1×PP4",  # STRICT_PACK, pipeline inside a PCIe node
        "chat": "TP1×PP1",
        "falcon": "TP1×PP1",
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
    try:
        for node in plan.nodes:
            if not node.stages:
                continue
            group = plan.group(node.group)
            label = ray_accelerator_type(group.accelerator)
            cluster.add_node(
                num_cpus=group.cpus,
                num_gpus=group.gpus_per_node,
                resources={f"accelerator_type:{label}": 1} if label else {},
                object_store_memory=80 * 2**20,
            )
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        for key in ("RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED"):
            os.environ.pop(key, None)
        os.environ.update(saved)


@pytest.mark.slow  # starts a local Ray cluster
def test_every_replica_is_placeable_on_the_planned_nodes(plan, ray_cluster):
    from ray.util.placement_group import placement_group, remove_placement_group

    document = yaml.safe_load(ray_serve_yaml(plan))
    wanted = []
    for config in llm_configs(document):
        bundles, strategy = replica_bundles(config)
        wanted += [(bundles, strategy)] * config["deployment_config"]["num_replicas"]
    wanted.sort(key=lambda item: -len(item[0]))  # as the plan packed them: largest first
    groups = [placement_group(bundles, strategy=strategy) for bundles, strategy in wanted]
    try:
        ready = [pg.wait(timeout_seconds=300) for pg in groups]  # generous: a busy machine is slow, not wrong
        assert all(ready), (
            f"{ready.count(False)} of {len(ready)} replica placement groups could not be placed"
        )
        free_planned = sum(n.free_gpus for n in plan.nodes if n.stages)
        assert wait_until(lambda: ray.available_resources().get("GPU", 0) == free_planned), (
            f"{ray.available_resources().get('GPU', 0)} GPUs free, the plan leaves {free_planned}"
        )
        # The export really needs what it asks for: one more 8-GPU replica has no room left.
        extra = placement_group([{"GPU": 1.0}] * 8, strategy="STRICT_PACK")
        assert not extra.wait(timeout_seconds=2)
        remove_placement_group(extra)
    finally:
        for pg in groups:
            remove_placement_group(pg)
