"""Data sets, partitioners and front-ends."""

from gptfl_ray.data.base import Dataset
from gptfl_ray.data.registry import dataset_names, load_dataset, register_dataset

__all__ = ["Dataset", "dataset_names", "load_dataset", "register_dataset"]
