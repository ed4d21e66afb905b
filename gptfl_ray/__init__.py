"""gptfl-ray: GPT-FL (Zhang et al., CVPR-W 2024) and FGL on a Ray-distributed FL simulator."""

__version__ = "0.1.0"
