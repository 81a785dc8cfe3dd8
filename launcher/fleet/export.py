"""Hand a FleetPlan to the engines that serve it: a Ray Serve LLM config, a KubeRay RayService, vLLM commands.

Pure functions from the plan to dicts and text; nothing here imports Ray or vLLM. The configs carry every
vLLM setting the plan assumed (TP/PP sizes, context, dtype, memory share, batch, block size) so the engine
sizes its KV cache and batch the way Berth did.
"""

from __future__ import annotations

import json
import re
import shlex
from math import ceil
from typing import Any, Literal

import yaml

from launcher.fleet.errors import FleetShortError
from launcher.fleet.sizing import is_native
from launcher.fleet.types import FleetPlan, ModelPlan, NodeGroup, NodePlan, ReplicaEstimate
from registry.schema import Accelerator

ExportFormat = Literal["ray-serve", "kuberay", "vllm"]
FORMATS: tuple[ExportFormat, ...] = ("ray-serve", "kuberay", "vllm")

#: The Ray release these configs are written for (the schemas the tests check them against).
RAY_VERSION = "2.60.0"
#: Ray's image with vLLM; check the tag that matches your CUDA driver on Docker Hub (rayproject/ray-llm).
DEFAULT_IMAGE = f"rayproject/ray-llm:{RAY_VERSION}-py311-cu128"
#: The Serve application builder of Ray Serve LLM (OpenAI-compatible routes for every model).
IMPORT_PATH = "ray.serve.llm:build_openai_app"
#: Port of the OpenAI-compatible HTTP endpoint (Serve's default).
HTTP_PORT = 8000
#: Port of Ray's head node (GCS).
RAY_PORT = 6379
#: Share of a node's RAM the Ray worker pod requests; the rest stays with the kubelet and the OS.
POD_MEMORY_SHARE = 0.9
#: Share of a node's CPU cores left to the kubelet, the container runtime and the OS (at least one core):
#: a pod that requests every core of the node can never be scheduled.
NODE_CPU_RESERVE_SHARE = 0.06
#: Prefix of the custom Ray resources that tie each model's workers to the nodes the plan gave it.
RESOURCE_PREFIX = "berth-"
#: Head pod of the RayService: no GPUs and no Ray CPUs (no replicas there), room for the controller.
HEAD_CPUS = 4
HEAD_MEMORY = "16Gi"

#: NVIDIA accelerator types Ray detects on its own (ray.util.accelerators) and LLMConfig accepts.
RAY_NVIDIA_TYPES = frozenset(
    {"V100", "P100", "T4", "P4", "K80", "A10G", "L4", "L40S", "A100", "H100", "H200", "H20", "B200", "B300",
     "GB200", "GB300", "RTX-PRO-6000"}
)  # fmt: skip
#: How Ray names a GPU from its NVML name (ray/_private/accelerators/nvidia_gpu.py).
_NVML_TYPE = re.compile(r"\w+\s+((?:[A-Z]+\s+)*[A-Z0-9]*\d[A-Z0-9]*)")


def ray_accelerator_type(acc: Accelerator) -> str | None:
    """The `accelerator_type` Ray gives nodes with this GPU, if LLMConfig accepts it (else None)."""
    match = _NVML_TYPE.match(acc.name)
    label = match.group(1).replace(" ", "-") if match else None
    return label if label in RAY_NVIDIA_TYPES else None


def _served(plan: FleetPlan, allow_partial: bool) -> list[ModelPlan]:
    """The models to export; FleetShortError unless everything fits (or partial exports are allowed)."""
    unserved = [m.name for m in plan.models if m.status != "ok"]
    if unserved and not allow_partial:
        raise FleetShortError(unserved, plan.missing_gpus)
    served = [m for m in plan.models if m.replica is not None and m.replicas_placed > 0]
    if not served:
        raise FleetShortError(unserved, plan.missing_gpus, nothing_placed=True)
    return served


def _replicas(model: ModelPlan, allow_partial: bool) -> int:
    return model.replicas_placed if allow_partial else model.replicas_needed


def engine_kwargs(model: ModelPlan, plan: FleetPlan) -> dict[str, Any]:
    """vLLM engine arguments of one model, as the plan sized it."""
    replica = model.replica
    assert replica is not None
    kwargs: dict[str, Any] = {
        "tensor_parallel_size": replica.shape.tp,
        "pipeline_parallel_size": replica.shape.pp,
        "max_model_len": replica.context,
        "dtype": replica.dtype,
        "gpu_memory_utilization": plan.engine.gpu_memory_utilization,
        "max_num_seqs": replica.batch,
        "max_num_batched_tokens": replica.max_num_batched_tokens,
    }
    if plan.engine.block_size_set:
        kwargs["block_size"] = plan.engine.block_size
    if is_native(model.workload.card, replica.quantization):
        # Published in FP8/MXFP4: vLLM reads the checkpoint's quantization_config; dtype 'auto' keeps the
        # checkpoint's own activation dtype instead of forcing bfloat16 over it.
        kwargs["dtype"] = "auto"
        kwargs["quantization"] = replica.quantization
    elif replica.quantization == "fp8":
        kwargs["quantization"] = "fp8"
    elif replica.quantization == "nf4":
        kwargs["quantization"] = "bitsandbytes"
    if model.workload.card.remote_code:
        kwargs["trust_remote_code"] = True
    return kwargs


def placement_strategy(replica: ReplicaEstimate, group: NodeGroup) -> str:
    """STRICT_PACK when a replica fits in one node (as the plan placed it), PACK when stages cross nodes."""
    return "STRICT_PACK" if replica.shape.gpus <= group.gpus_per_node else "PACK"


def model_resources(plan: FleetPlan) -> dict[str, str]:
    """The custom Ray resource of each served model: 'berth-' and the served name in Ray-safe characters
    (a number appended where two names would read the same)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for index, model in enumerate(plan.models):
        base = RESOURCE_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", model.name)
        name = base if base not in taken else f"{base}-{index}"
        taken.add(name)
        names[model.name] = name
    return names


def node_resources(plan: FleetPlan) -> dict[str, dict[str, int]]:
    """The custom resources each node starts Ray with: for every model the plan put there, one unit per GPU
    it gave that model. Every worker of a model asks for one unit, so Ray can put a model's workers only
    where the plan put them, in the same numbers, whatever order the placement groups are created in
    (Ray's own accelerator_type labels cannot tell an A100-40GB from an A100-80GB)."""
    names = model_resources(plan)
    out: dict[str, dict[str, int]] = {}
    for node in plan.nodes:
        resources: dict[str, int] = {}
        for stage in node.stages:
            key = names[stage.model]
            resources[key] = resources.get(key, 0) + len(stage.gpu_indices)
        out[node.name] = resources
    return out


def llm_config(
    model: ModelPlan, plan: FleetPlan, replicas: int, resource: str | None = None
) -> dict[str, Any]:
    """One `llm_configs` entry of Ray Serve LLM (validated by ray.serve.llm.LLMConfig in the tests); `resource`
    is the model's custom resource (default: model_resources' name for it)."""
    replica = model.replica
    assert replica is not None
    group = plan.group(replica.group)
    config: dict[str, Any] = {
        "model_loading_config": {"model_id": model.name, "model_source": model.workload.card.id},
    }
    ray_type = ray_accelerator_type(group.accelerator)
    if ray_type is not None:
        config["accelerator_type"] = ray_type
    config["engine_kwargs"] = engine_kwargs(model, plan)
    config["placement_group_config"] = {
        "bundle_per_worker": {"GPU": 1, resource or model_resources(plan)[model.name]: 1},
        "strategy": placement_strategy(replica, group),
    }
    config["deployment_config"] = {"num_replicas": replicas}
    return config


def serve_config(plan: FleetPlan, allow_partial: bool = False, http: bool = True) -> dict[str, Any]:
    """A Ray Serve config file (ServeDeploySchema) with one Ray Serve LLM application for all models."""
    models = _served(plan, allow_partial)
    resources = model_resources(plan)
    app = {
        "name": "llms",
        "route_prefix": "/",
        "import_path": IMPORT_PATH,
        "args": {
            "llm_configs": [
                llm_config(m, plan, _replicas(m, allow_partial), resources[m.name]) for m in models
            ]
        },
    }
    config: dict[str, Any] = {}
    if http:
        config["proxy_location"] = "EveryNode"
        config["http_options"] = {"host": "0.0.0.0", "port": HTTP_PORT}
    config["applications"] = [app]
    return config


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (serveConfigV2) as literal blocks, the way people write them by hand."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(value: Any) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _header(lines: list[str]) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


#: Nodes of one group that start Ray with the same custom resources: (group, node names, resources).
NodeSet = tuple[NodeGroup, list[str], dict[str, int]]


def node_sets(plan: FleetPlan) -> list[NodeSet]:
    """The used nodes grouped by node group and custom resources, in node order (KubeRay worker groups)."""
    resources = node_resources(plan)
    sets: dict[tuple[str, tuple[tuple[str, int], ...]], NodeSet] = {}
    for node in plan.nodes:
        if not node.stages:
            continue
        held = resources[node.name]
        key = (node.group, tuple(sorted(held.items())))
        if key not in sets:
            sets[key] = (plan.group(node.group), [], held)
        sets[key][1].append(node.name)
    return list(sets.values())


def _names(nodes: list[str]) -> str:
    return nodes[0] if len(nodes) == 1 else f"{nodes[0]} … {nodes[-1]} ({len(nodes)} nodes)"


def _resources_json(resources: dict[str, int]) -> str:
    return json.dumps(resources, separators=(",", ":"))


def ray_serve_yaml(plan: FleetPlan, source: str = "fleet.yaml", allow_partial: bool = False) -> str:
    """The Serve config as YAML, with how to run it."""
    gated = [m.workload.card.id for m in _served(plan, allow_partial) if m.workload.card.gated]
    lines = [
        f"Ray Serve LLM config written by `berth fleet export --format ray-serve` from {source}.",
        "Start Ray: a head without GPUs, then every node the plan uses with the resources given here; each",
        "model's workers ask for its `berth-` resource, so Ray places them only where the plan did.",
        f"  head:    ray start --head --port={RAY_PORT} --num-gpus=0",
    ]
    for _, nodes, resources in node_sets(plan):
        lines.append(
            f"  {_names(nodes)}: ray start --address=HEAD_HOST:{RAY_PORT} "
            f"--resources='{_resources_json(resources)}'"
        )
    lines += [
        "then deploy:  serve deploy THIS_FILE   (or: serve run THIS_FILE)",
        f"The OpenAI-compatible API answers on http://HEAD_HOST:{HTTP_PORT}/v1.",
    ]
    if gated:
        lines.append(
            f"Gated on the Hub ({', '.join(gated)}): export HF_TOKEN on every node before `ray start`."
        )
    return _header(lines) + _dump(serve_config(plan, allow_partial))


def pod_cpus(group: NodeGroup) -> int:
    """CPU cores a worker pod requests: the node's, less the kubelet's and the OS's reserve."""
    return max(1, group.cpus - max(1, ceil(group.cpus * NODE_CPU_RESERVE_SHARE)))


def _worker_group(
    name: str, group: NodeGroup, nodes: int, resources: dict[str, int], image: str
) -> dict[str, Any]:
    memory_gib = int(group.ram_bytes * POD_MEMORY_SHARE) // 2**30
    amd = group.accelerator.vendor == "amd"
    cpus = pod_cpus(group)
    pod = {
        "cpu": str(cpus),
        "memory": f"{memory_gib}Gi",
        ("amd.com/gpu" if amd else "nvidia.com/gpu"): str(group.gpus_per_node),
    }
    spec: dict[str, Any] = {}
    if not amd:  # NVIDIA's GPU feature discovery labels the product; AMD's GPUs are chosen by amd.com/gpu
        spec["nodeSelector"] = {"nvidia.com/gpu.product": group.accelerator.name.replace(" ", "-")}
    spec["containers"] = [
        {
            "name": "ray-worker",
            "image": image,
            "env": [
                {
                    "name": "HF_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "hf_token", "optional": True}},
                }
            ],
            "resources": {"limits": dict(pod), "requests": dict(pod)},
        }
    ]
    return {
        "groupName": name,
        "replicas": nodes,
        "minReplicas": nodes,
        "maxReplicas": nodes,
        "numOfHosts": 1,
        "rayStartParams": {
            "num-gpus": str(group.gpus_per_node),
            "num-cpus": str(cpus),
            "resources": json.dumps(_resources_json(resources)),
        },
        "template": {"spec": spec},
    }


def _worker_groups(plan: FleetPlan, image: str) -> list[dict[str, Any]]:
    """One KubeRay worker group per set of nodes that start Ray alike (node group and custom resources)."""
    sets = node_sets(plan)
    per_group: dict[str, int] = {}
    out = []
    for group, nodes, resources in sets:
        index = per_group.get(group.name, 0)
        per_group[group.name] = index + 1
        several = sum(1 for g, _, _ in sets if g.name == group.name) > 1
        name = f"{group.name}-{index}" if several else group.name
        out.append(_worker_group(name, group, len(nodes), resources, image))
    return out


def used_nodes(plan: FleetPlan, group: str) -> int:
    """Nodes of a group the plan puts anything on."""
    return sum(1 for n in plan.nodes if n.group == group and n.stages)


def rayservice(
    plan: FleetPlan, name: str = "berth-fleet", image: str = DEFAULT_IMAGE, allow_partial: bool = False
) -> dict[str, Any]:
    """A KubeRay `ray.io/v1` RayService: the Serve config, a CPU head and one worker group per node group,
    sized to the nodes the plan uses."""
    serve = serve_config(plan, allow_partial, http=False)
    workers = _worker_groups(plan, image)
    head_resources = {"cpu": str(HEAD_CPUS), "memory": HEAD_MEMORY}
    ports = [("gcs", RAY_PORT), ("dashboard", 8265), ("client", 10001), ("serve", HTTP_PORT)]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {
            "serveConfigV2": _dump(serve),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "headGroupSpec": {
                    "rayStartParams": {"num-cpus": "0", "num-gpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "ray-head",
                                    "image": image,
                                    "ports": [
                                        {"containerPort": p, "name": n, "protocol": "TCP"} for n, p in ports
                                    ],
                                    "resources": {
                                        "limits": dict(head_resources),
                                        "requests": dict(head_resources),
                                    },
                                }
                            ]
                        }
                    },
                },
                "workerGroupSpecs": workers,
            },
        },
    }


def kuberay_yaml(
    plan: FleetPlan,
    source: str = "fleet.yaml",
    name: str = "berth-fleet",
    image: str = DEFAULT_IMAGE,
    allow_partial: bool = False,
) -> str:
    """The RayService as YAML, with how to apply it."""
    lines = [
        f"KubeRay RayService written by `berth fleet export --format kuberay` from {source}.",
        "Needs the KubeRay operator and NVIDIA's GPU operator (NVIDIA worker pods select their nodes by the",
        "nvidia.com/gpu.product label) or AMD's GPU operator (AMD pods request amd.com/gpu). Each worker group",
        "starts Ray with the `berth-` resources that keep every model on the nodes the plan gave it.",
        "Gated models read the Hub token from a secret:",
        "  kubectl create secret generic hf-token --from-literal=hf_token=...",
        "Apply:  kubectl apply -f THIS_FILE",
        f"Check the image tag ({image}) against your CUDA driver.",
    ]
    return _header(lines) + _dump(rayservice(plan, name, image, allow_partial))


# --------------------------------------------------------------------------- vLLM commands


def _vllm_args(model: ModelPlan, plan: FleetPlan, port: int, ray: bool) -> list[str]:
    args = ["vllm", "serve", model.workload.card.id, "--served-model-name", model.name]
    for key, value in engine_kwargs(model, plan).items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    if ray:
        args += ["--distributed-executor-backend", "ray"]
    return [*args, "--host", "0.0.0.0", "--port", str(port)]


#: The (node, pipeline stage, GPU indices) a replica runs on, one entry per stage.
_ReplicaPlaces = list[tuple[NodePlan, int, tuple[int, ...]]]


def vllm_script(plan: FleetPlan, source: str = "fleet.yaml", allow_partial: bool = False) -> str:
    """`vllm serve` command lines per node: single-node replicas pinned with CUDA_VISIBLE_DEVICES,
    multi-node replicas through one Ray cluster of the GPUs they use (--distributed-executor-backend ray)."""
    models = {m.name: m for m in _served(plan, allow_partial)}
    replica_nodes = _replica_places(plan, models)
    multi = {key for key, where in replica_nodes.items() if len({n.name for n, _, _ in where}) > 1}
    ray_gpus: dict[str, list[int]] = {}
    for key in sorted(multi):
        for node, _, indices in replica_nodes[key]:
            ray_gpus.setdefault(node.name, []).extend(indices)
    out = [
        "#!/usr/bin/env bash",
        _header(
            [
                f"vLLM commands written by `berth fleet export --format vllm` from {source}.",
                "Run each block on the node it names (node names stand for your hosts' addresses).",
                "Every command serves an OpenAI-compatible API on the port it gives; put a load balancer",
                "in front of the replicas of a model, or use `--format ray-serve` to let Ray Serve route.",
            ]
        ).rstrip("\n"),
        "set -euo pipefail",
    ]
    if ray_gpus:
        out += _ray_cluster_lines(plan, ray_gpus)
    ports: dict[str, int] = {}
    for model in models.values():
        replica = model.replica
        assert replica is not None
        out += [
            "",
            f"# --- {model.name}: {_replicas(model, allow_partial)} replica(s) of {replica.shape.label} "
            f"on {replica.group} ({replica.accelerator}), {replica.batch} sequences each",
        ]
        for index in range(model.replicas_placed):
            where = sorted(replica_nodes[(model.name, index)], key=lambda item: item[1])
            first, _, _ = where[0]
            port = ports.get(first.name, HTTP_PORT)
            ports[first.name] = port + 1
            out += _replica_lines(model, plan, index, where, port, (model.name, index) in multi)
    out += ["", "wait", ""]
    return "\n".join(out)


def _replica_places(plan: FleetPlan, models: dict[str, ModelPlan]) -> dict[tuple[str, int], _ReplicaPlaces]:
    """Where each (model, replica) of the served models runs, in node order."""
    replica_nodes: dict[tuple[str, int], _ReplicaPlaces] = {}
    for node in plan.nodes:
        for stage in node.stages:
            if stage.model in models:
                replica_nodes.setdefault((stage.model, stage.replica), []).append(
                    (node, stage.stage, stage.gpu_indices)
                )
    return replica_nodes


def _ray_cluster_lines(plan: FleetPlan, ray_gpus: dict[str, list[int]]) -> list[str]:
    """`ray start` per node for the GPUs of multi-node replicas: the first such node is the head."""
    order = {name: i for i, name in enumerate(dict.fromkeys(n.name for n in plan.nodes))}
    head = min(ray_gpus, key=order.__getitem__)
    out = ["", "# --- Ray cluster for the replicas that span nodes (only their GPUs join it)"]
    for name in sorted(ray_gpus, key=lambda n: (n != head, order[n])):
        joined = sorted(ray_gpus[name])
        visible = ",".join(str(g) for g in joined)
        start = f"--head --port={RAY_PORT}" if name == head else f"--address={head}:{RAY_PORT}"
        out.append(f"# on {name}")
        out.append(f"CUDA_VISIBLE_DEVICES={visible} ray start {start} --num-gpus={len(joined)}")
    return out


def _replica_lines(
    model: ModelPlan, plan: FleetPlan, index: int, where: _ReplicaPlaces, port: int, spans_nodes: bool
) -> list[str]:
    """A comment and the `vllm serve` line for one replica: through Ray when it spans nodes, else pinned."""
    first, _, _ = where[0]
    if spans_nodes:
        stages = ", ".join(f"stage {s} on {n.name} GPUs {','.join(map(str, g))}" for n, s, g in where)
        return [
            f"# replica {index}: {stages}; run on {first.name} (joined to the Ray cluster above)",
            shlex.join(_vllm_args(model, plan, port, ray=True)) + " &",
        ]
    gpus = sorted(g for _, _, group in where for g in group)
    visible = ",".join(map(str, gpus))
    return [
        f"# replica {index}: on {first.name}, GPUs {visible}",
        f"CUDA_VISIBLE_DEVICES={visible} " + shlex.join(_vllm_args(model, plan, port, ray=False)) + " &",
    ]


def export_text(
    plan: FleetPlan,
    fmt: ExportFormat,
    source: str = "fleet.yaml",
    image: str = DEFAULT_IMAGE,
    name: str = "berth-fleet",
    allow_partial: bool = False,
) -> str:
    """The plan in one of the export formats."""
    if fmt == "ray-serve":
        return ray_serve_yaml(plan, source, allow_partial)
    if fmt == "kuberay":
        return kuberay_yaml(plan, source, name, image, allow_partial)
    return vllm_script(plan, source, allow_partial)
