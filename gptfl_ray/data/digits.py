"""scikit-learn's digits: 1797 real 8x8 handwritten digits, the embedded offline default.

The data ship inside scikit-learn, so this task needs no network. Pixels are counts of set
pixels in 4x4 blocks of a 32x32 bitmap, 0..16; the glyph generator produces exactly this format.

Split (fixed by `seed`): a stratified 20% test set (360), then a stratified 10% of the rest as
validation (142), leaving 1,295 training samples for the clients.
"""

from __future__ import annotations

import numpy as np

from gptfl_ray.data.base import Dataset, carve_validation

DIGITS_CLASS_NAMES = tuple(str(i) for i in range(10))


def load_digits_dataset(seed: int = 0, test_fraction: float = 0.2, **_) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.images.astype(np.uint8)[:, None, :, :]  # (1797, 1, 8, 8), values 0..16
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    train, val = carve_validation(y_tr, seed)
    return Dataset(
        name="digits",
        modality="image",
        class_names=DIGITS_CLASS_NAMES,
        x_train=x_tr[train],
        y_train=y_tr[train],
        x_test=x_te,
        y_test=y_te,
        x_val=x_tr[val],
        y_val=y_tr[val],
        max_value=16.0,
        mean=(0.3,),
        std=(0.4,),
        extra={"split_seed": int(seed)},
    )
