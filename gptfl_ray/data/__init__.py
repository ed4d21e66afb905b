"""Data sets, partitioners and front-ends."""

from gptfl_ray.data.base import Dataset
from gptfl_ray.data.partition import partition, partition_summary, partition_table
from gptfl_ray.data.registry import dataset_names, load_dataset, register_dataset

__all__ = [
    "Dataset",
    "dataset_names",
    "load_dataset",
    "partition",
    "partition_summary",
    "partition_table",
    "register_dataset",
]
