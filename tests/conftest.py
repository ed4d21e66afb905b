import os

import pytest

# Keep any Ray a test starts on loopback and out of the home directory (docs/architecture.md).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _split_rows(x, y, key):
    import numpy as np

    x = np.ascontiguousarray(x)
    return [(int(label), key(x[i])) for i, label in enumerate(np.asarray(y))]


def check_splits(load, x_source, y_source, key=lambda sample: sample.tobytes()):
    """Load twice: the same three splits both times, non-empty, and together exactly the source.

    Each source sample lands in exactly one of train / val / test (as a multiset, so a data set
    with duplicate samples still may not use one twice). `key` identifies a sample (its bytes
    by default; a tag where the loader's float path may differ in the last bit). Returns the
    data set.
    """
    from collections import Counter

    import numpy as np

    ds, again = load(), load()
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert len(y) > 0, f"{ds.name}: empty {split} split"
        np.testing.assert_array_equal(x, getattr(again, f"x_{split}"))
        np.testing.assert_array_equal(y, getattr(again, f"y_{split}"))
    got = Counter(
        _split_rows(ds.x_train, ds.y_train, key)
        + _split_rows(ds.x_val, ds.y_val, key)
        + _split_rows(ds.x_test, ds.y_test, key)
    )
    assert got == Counter(_split_rows(x_source, y_source, key)), f"{ds.name}: splits are not a partition of the source"
    return ds


@pytest.fixture
def splits_check():
    return check_splits
