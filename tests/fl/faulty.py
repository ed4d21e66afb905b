"""Fault injection for the fl/ tests, from the outside: nothing in the production types knows it.

A client fails by its data: `poison(x, parts, clients)` marks those clients' samples, and the
models a `PoisonedFactory` builds raise on any batch holding a marked sample, in whichever
executor, process or actor trains it.
"""

from __future__ import annotations

import numpy as np

POISON = np.float32(1e9)


def _raise_on_poison(module, args):
    # Under vmap this data-dependent check itself raises, so a cohort falls back to training its
    # clients one by one, where the poisoned client raises under its own id.
    if bool((args[0] >= POISON).any()):
        raise RuntimeError("injected failure")


class PoisonedFactory:
    def __init__(self, inner):
        self.inner = inner

    def __call__(self):
        model = self.inner()
        model.register_forward_pre_hook(_raise_on_poison)
        return model


def poison(x: np.ndarray, parts, clients) -> np.ndarray:
    x = np.array(x, copy=True)
    for c in clients:
        x[parts[c]] = POISON
    return x
