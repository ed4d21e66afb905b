"""The methods users name, composed from the stages: plain FL, GPT-FL, FGL.

Importing the package registers every variant with `methods/simulate.py`, GPT-FL's
(`gptfl.py`: fedavg, synthetic, gptfl) before FGL's (`fgl.py`): the order `--variants` lists."""

from gptfl_ray.methods import gptfl  # noqa: F401 - registers its variants

# isort: split
from gptfl_ray.methods import fgl  # noqa: F401 - registers its variants
