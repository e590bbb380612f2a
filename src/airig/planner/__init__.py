"""The model-fit planner: which models fit which build, at which quantization, with how much
context for how many concurrent users (weights + KV cache + engine overhead)."""

from airig.planner.catalog import Catalog, ModelSpec, QuantFormat
from airig.planner.fit import PlanRequest, PlanRow, plan

__all__ = ["Catalog", "ModelSpec", "PlanRequest", "PlanRow", "QuantFormat", "plan"]
