"""Replicas a workload needs on one replica shape, from both phases: decode batches and prefill throughput.

Pure functions; imports the fleet's types and sizing. Decode: the sequences in flight (given, or Little's law)
over the replica's batch. Prefill: the prompt tokens arriving per second over what one replica prefills
(chunked prefill within max_num_batched_tokens), each replica kept busy with prefill only as much as the
time-to-first-token target allows (the mean wait of an M/D/1 queue). The replica count is the larger need.
"""

from __future__ import annotations

from math import ceil

from launcher.fleet.sizing import Sizing
from launcher.fleet.types import Capacity, Workload

#: Replica counts are rounded up from needs this close below an integer (float noise).
_EPSILON = 1e-9


def concurrency_needed(workload: Workload, sizing: Sizing, batch: int | None = None) -> float:
    """Sequences in flight the workload needs: given, or arrival rate × time in the system (Little's law),
    time in the system being the time to first token plus the output at the replica's decode speed."""
    if workload.concurrency is not None:
        return float(workload.concurrency)
    assert workload.requests_per_s is not None and workload.output_tokens is not None
    estimate = sizing.estimate
    run_batch = estimate.batch if batch is None else batch
    seconds = estimate.ttft_s + workload.output_tokens / sizing.rate_at(run_batch)
    return workload.requests_per_s * seconds


def arrival_rate(workload: Workload, sizing: Sizing, concurrency: float) -> float | None:
    """Requests per second: given, or the concurrency over the time a request spends (when the lengths are
    known); None when the workload gives no output length to time a request by."""
    if workload.requests_per_s is not None:
        return workload.requests_per_s
    if workload.output_tokens is None:
        return None
    estimate = sizing.estimate
    seconds = estimate.ttft_s + workload.output_tokens / estimate.decode_tokens_per_s_per_user
    return concurrency / seconds


def prefill_utilisation(service_s: float, target_s: float | None) -> float:
    """The largest share of time a replica may spend prefilling so that the mean time to first token (an
    M/D/1 queue's wait ρ·s / 2(1 − ρ) plus the prefill s itself) stays within the target; 1 without one."""
    if target_s is None:
        return 1.0
    slack = target_s - service_s
    if slack <= 0:
        return 0.0
    return min(1.0, 2 * slack / (2 * slack + service_s))


def _decode_replicas(workload: Workload, sizing: Sizing) -> tuple[float, int]:
    """(concurrency needed, replicas) at a full batch, refined once if a single replica runs lighter."""
    batch = sizing.estimate.batch
    need = concurrency_needed(workload, sizing)
    if workload.concurrency is None and need < batch:
        need = concurrency_needed(workload, sizing, max(1, ceil(need)))
    return need, max(1, ceil(need / batch - _EPSILON))


def capacity(workload: Workload, sizing: Sizing) -> Capacity:
    """What the workload needs of replicas of this sizing, per phase."""
    concurrency, decode = _decode_replicas(workload, sizing)
    rate = arrival_rate(workload, sizing, concurrency)
    estimate = sizing.estimate
    demand = rate * workload.prompt_tokens if rate is not None and workload.prompt_tokens else 0.0
    share = prefill_utilisation(estimate.ttft_s, workload.ttft_s)
    prefill = 0
    if demand > 0 and share > 0:
        prefill = ceil(demand / (estimate.prefill_tokens_per_s * share) - _EPSILON)
    return Capacity(
        concurrency=concurrency,
        decode_replicas=decode,
        arrival_per_s=rate,
        prefill_tokens_per_s_needed=demand,
        prefill_utilisation=share,
        prefill_replicas=prefill,
    )


def headroom(cap: Capacity, sizing: Sizing, replicas: int | None = None) -> float:
    """How many times over the replicas carry the load, in the tighter phase (1.0: exactly)."""
    count = cap.replicas if replicas is None else replicas
    ratios = [count * sizing.estimate.batch / cap.concurrency] if cap.concurrency > 0 else []
    if cap.prefill_tokens_per_s_needed > 0:
        usable = sizing.estimate.prefill_tokens_per_s * cap.prefill_utilisation
        ratios.append(count * usable / cap.prefill_tokens_per_s_needed)
    return min(ratios) if ratios else float(count)
