"""A step's process: read the job file, build the model or run the case, record the figures or the error.

Imports the benchmark's build and measure modules; torch only through them.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

from bench._common import write_json_atomic
from bench.gpu.build import build_model
from bench.gpu.measure import run_case
from bench.gpu.steps import Job


def child_main(job_path: Path) -> int:
    """Run one step described by a job file; what it measures is written to the job's result file."""
    data = json.loads(job_path.read_text())
    result_path = Path(data["result_path"])
    result: dict[str, Any] = {"name": data["name"], "done": False}

    def save() -> None:
        write_json_atomic(result_path, result)

    started = time.perf_counter()
    try:
        job = Job.from_json(data)
        if job.spec.mode is None:
            build_model(job.spec.card, Path(job.spec.folder), job.tiny, result)
        else:
            run_case(job, result, save)
        result["done"] = True
    except BaseException as error:  # recorded, so the parent reports it as this step's failure
        result["error"] = f"{type(error).__name__}: {str(error)[:2000]}"
        result["traceback"] = traceback.format_exc()[-6000:]
        traceback.print_exc()
    result["seconds"] = time.perf_counter() - started
    save()
    return 0 if result["done"] else 1
