"""Models by name and the flat-vector view of their state the FL core works on."""

from gptfl_ray.models.params import get_flat, num_params, set_flat
from gptfl_ray.models.registry import ModelSpec, build_model, model_names, model_norms, register_model

__all__ = [
    "ModelSpec",
    "build_model",
    "get_flat",
    "model_names",
    "model_norms",
    "num_params",
    "register_model",
    "set_flat",
]
