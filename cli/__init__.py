"""The `gptfl-ray` command line (installed as gptfl_ray.cli): parsing and printing only."""
