"""gptfl-ray: GPT-FL (Zhang et al., CVPR-W 2024) and FGL on a Ray-distributed FL simulator."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy: `import gptfl_ray` stays free of torch until a model is loaded
    if name == "load_model":
        from gptfl_ray.models.export import load_model

        return load_model
    raise AttributeError(f"module 'gptfl_ray' has no attribute {name!r}")


__all__ = ["__version__", "load_model"]
