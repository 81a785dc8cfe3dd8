"""Berth's registry: the catalog of open models and accelerators, and what each model needs in memory."""

from registry.catalog import Catalog, load_catalog
from registry.errors import BerthError, CatalogError, UnknownAcceleratorError, UnknownModelError
from registry.memory import MemoryEstimate, Precision, estimate_memory
from registry.params import Block, Layout, count_params, layout
from registry.schema import Accelerator, Architecture, ModelCard

__all__ = [
    "Accelerator",
    "Architecture",
    "BerthError",
    "Block",
    "Catalog",
    "CatalogError",
    "Layout",
    "MemoryEstimate",
    "ModelCard",
    "Precision",
    "UnknownAcceleratorError",
    "UnknownModelError",
    "count_params",
    "estimate_memory",
    "layout",
    "load_catalog",
]
