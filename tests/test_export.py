"""The exporters, checked against the plan they come from (Ray's own schemas: test_export_ray.py)."""

from __future__ import annotations

import shlex

import pytest
import yaml

from launcher.fleet.errors import FleetShortError
from launcher.fleet.export import (
    RAY_VERSION,
    export_text,
    node_resources,
    ray_accelerator_type,
    rayservice,
    serve_config,
    used_nodes,
    vllm_script,
)
from tests.fleet_support import fleet_catalog, nodes_yaml, plan_from

FLEET = (
    nodes_yaml("h100 h100 8 3", "l40s l40s 4 1 pcie")
    + """\
models:
  - model: llama-8b
    name: chat
    context: 8192
    concurrency: 60
    tokens_per_s_per_user: 40
  - model: deepseek-v3
    name: deepseek
    context: 8192
    concurrency: 8
    quantization: fp8
  - model: falcon-7b
    name: falcon
    context: 2048
    concurrency: 100
    accelerator: l40s
"""
)


@pytest.fixture(scope="module")
def plan():
    result = plan_from(FLEET)
    assert result.complete
    return result


@pytest.mark.parametrize(
    ("acc", "label"),
    [("h100-sxm", "H100"), ("a100-80gb", "A100"), ("l4", "L4"), ("l40s", "L40S"), ("v100-32gb", "V100")],
)
def test_ray_accelerator_type_follows_rays_nvml_naming(acc, label):
    assert ray_accelerator_type(fleet_catalog().accelerator(acc)) == label


def test_serve_config_carries_the_plan(plan):
    config = serve_config(plan)
    (app,) = config["applications"]
    assert app["import_path"] == "ray.serve.llm:build_openai_app"
    by_id = {c["model_loading_config"]["model_id"]: c for c in app["args"]["llm_configs"]}
    for model in plan.models:
        cfg, r = by_id[model.name], model.replica
        assert cfg["model_loading_config"]["model_source"] == model.workload.card.id
        kwargs = cfg["engine_kwargs"]
        assert (kwargs["tensor_parallel_size"], kwargs["pipeline_parallel_size"]) == (r.shape.tp, r.shape.pp)
        assert kwargs["max_model_len"] == model.workload.context
        assert kwargs["max_num_seqs"] == r.batch
        assert cfg["deployment_config"] == {"num_replicas": model.replicas_needed}
    deepseek = by_id["deepseek"]
    assert deepseek["engine_kwargs"]["quantization"] == "fp8"
    assert deepseek["placement_group_config"]["strategy"] == "PACK"  # 16 GPUs cross two nodes
    assert by_id["chat"]["placement_group_config"]["strategy"] == "STRICT_PACK"
    assert by_id["falcon"]["accelerator_type"] == "L40S"


def test_rayservice_worker_groups_match_the_nodes_used(plan):
    service = rayservice(plan)
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    spec = service["spec"]
    assert yaml.safe_load(spec["serveConfigV2"]) == serve_config(plan, http=False)
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == RAY_VERSION
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    workers = cluster["workerGroupSpecs"]
    # One worker group per set of nodes that start Ray alike; together they are the nodes the plan uses.
    for group in plan.groups:
        mine = [
            w for w in workers if w["groupName"] == group.name or w["groupName"].startswith(f"{group.name}-")
        ]
        assert sum(w["replicas"] for w in mine) == used_nodes(plan, group.name)
    for worker in workers:
        assert worker["replicas"] == worker["minReplicas"] == worker["maxReplicas"]
        name = worker["groupName"]
        group = next(g for g in plan.groups if name == g.name or name.startswith(f"{g.name}-"))
        pod = worker["template"]["spec"]["containers"][0]["resources"]
        assert pod["limits"]["nvidia.com/gpu"] == str(group.gpus_per_node)
        # The pod leaves the node's reserve: fewer cores and less memory than the node has.
        assert (
            int(pod["requests"]["cpu"]) < group.cpus
            and worker["rayStartParams"]["num-cpus"] == pod["requests"]["cpu"]
        )
        assert int(pod["requests"]["memory"].removesuffix("Gi")) * 2**30 < group.ram_bytes
        assert worker["template"]["spec"]["nodeSelector"][
            "nvidia.com/gpu.product"
        ] == group.accelerator.name.replace(" ", "-")


def test_amd_gpus_get_amd_resources_and_no_nvidia_selector():
    plan = plan_from(
        nodes_yaml("mi mi300x 8 1")
        + "models:\n  - model: llama-70b\n    context: 8192\n    concurrency: 16\n"
    )
    (worker,) = rayservice(plan)["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    spec = worker["template"]["spec"]
    assert "nodeSelector" not in spec
    pod = spec["containers"][0]["resources"]
    assert pod["requests"]["amd.com/gpu"] == "8" and "nvidia.com/gpu" not in pod["limits"]


def test_each_model_asks_for_its_own_resource_on_its_own_nodes(plan):
    config = serve_config(plan)
    (app,) = config["applications"]
    for cfg in app["args"]["llm_configs"]:
        name = cfg["model_loading_config"]["model_id"]
        (custom,) = [k for k in cfg["placement_group_config"]["bundle_per_worker"] if k.startswith("berth-")]
        model = plan.model(name)
        per_node = node_resources(plan)
        total = sum(res.get(custom, 0) for res in per_node.values())
        assert total == model.replicas_placed * model.replica.shape.gpus  # exactly the GPUs the plan gave it


def test_vllm_script_matches_the_placement(plan):
    script = vllm_script(plan)
    lines = script.splitlines()
    commands = [(lines[i - 1], line) for i, line in enumerate(lines) if "vllm serve" in line]
    assert len(commands) == sum(m.replicas_needed for m in plan.models)
    ports: dict[str, set[int]] = {}
    for comment, line in commands:
        args = shlex.split(line.removesuffix(" &"))
        tp = int(args[args.index("--tensor-parallel-size") + 1])
        pp = int(args[args.index("--pipeline-parallel-size") + 1])
        if "--distributed-executor-backend" in args:
            assert args[args.index("--distributed-executor-backend") + 1] == "ray"
            assert (tp, pp) == (8, 2)
            node = comment.split("run on ", 1)[1].split()[0]
        else:
            visible = args[0].removeprefix("CUDA_VISIBLE_DEVICES=")
            assert args[0] != visible and len(visible.split(",")) == tp * pp
            node = comment.split("on ", 1)[1].split(",")[0]
        port = int(args[args.index("--port") + 1])
        assert port not in ports.setdefault(node, set())  # one port per server on a node
        ports[node].add(port)
    # The two-node replica's GPUs join a Ray cluster; nothing else does.
    ray_lines = [line for line in lines if "ray start" in line]
    assert len(ray_lines) == 2 and "--head" in ray_lines[0] and "--address=" in ray_lines[1]
    assert all(line.startswith("CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 ") for line in ray_lines)


def test_short_plan_refuses_a_full_export():
    short = plan_from(
        nodes_yaml("h100 h100 8 3")
        # Llama-3.1-8B: replicas of one node each (vLLM's budget leaves a 70B model one 40-GPU replica for
        # 1,000 sequences, larger than this fleet, so nothing of it would be placed at all).
        + "models:\n  - model: llama-8b\n    context: 8192\n    concurrency: 5000\n"
    )
    with pytest.raises(FleetShortError):
        export_text(short, "ray-serve")
    partial = yaml.safe_load(export_text(short, "ray-serve", allow_partial=True))
    (cfg,) = partial["applications"][0]["args"]["llm_configs"]
    assert cfg["deployment_config"]["num_replicas"] == short.models[0].replicas_placed >= 1


def test_block_size_is_vllms_unless_the_fleet_sets_it(plan):
    for config in serve_config(plan)["applications"][0]["args"]["llm_configs"]:
        assert "block_size" not in config["engine_kwargs"]  # FlashMLA (DeepSeek) wants 64: let vLLM choose
    chosen = plan_from(FLEET + "engine:\n  block_size: 32\n")
    for config in serve_config(chosen)["applications"][0]["args"]["llm_configs"]:
        assert config["engine_kwargs"]["block_size"] == 32
    assert "--block-size 32" in vllm_script(chosen)
