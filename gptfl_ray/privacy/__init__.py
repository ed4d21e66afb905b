"""Private aggregation for GPT-FL: secure aggregation and IBLT label-name union.

GPT-FL (Zhang et al., section 3.1) collects clients' label names by encoding them into Invertible
Bloom Lookup Tables (Goodrich and Mitzenmacher 2011) that the server sums with secure aggregation
(Bonawitz et al., CCS 2017), as in federated heavy hitters (Gascón et al. 2023).
"""

from __future__ import annotations

from gptfl_ray.privacy.iblt import IBLTOverflowError, IBLTParams
from gptfl_ray.privacy.labels import LabelUnionStats, private_label_union
from gptfl_ray.privacy.quantize import quantization_error_bound
from gptfl_ray.privacy.secagg.driver import SecAggResult, secure_sum, secure_sum_int
from gptfl_ray.privacy.secagg.messages import SecAggAbort

__all__ = [
    "IBLTOverflowError",
    "IBLTParams",
    "LabelUnionStats",
    "SecAggAbort",
    "SecAggResult",
    "private_label_union",
    "quantization_error_bound",
    "secure_sum",
    "secure_sum_int",
]
