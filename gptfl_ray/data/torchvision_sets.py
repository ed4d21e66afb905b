"""MNIST, CIFAR-10, CIFAR-100 and Oxford 102 Flowers through torchvision's dataset classes.

GPT-FL evaluates CIFAR-10/100 (Krizhevsky 2009) and Flowers102 (Nilsback & Zisserman 2008)
(paper section 4.1); MNIST is the small real-image check. Each loader reads torchvision's
on-disk layout under `data_dir` (default `~/.cache/gptfl-ray/data`), downloads only when asked,
and returns the shared `Dataset`: raw uint8 NCHW pixels, int64 labels, the real class names
(they are what GPT-FL's prompts are built from), per-data-set channel mean/std.

Validation: a stratified 10% of the official training set (`carve_validation`, fixed by the
split `seed`), held out from every client; the official test set stays the test set.
The paper does not say which Flowers102 splits it uses; here the official train and val splits
(10 images per class each) are pooled as the training set (the validation share is then carved
from the pool like for every torchvision set) and the official test split (6149 images) is the
test set, the common protocol.
Its images vary in size, so each is resized (shorter side to `image_size`, 64 px by default,
bilinear) and centre-cropped square; the result is cached as an .npz next to the images so
only the first load decodes 8189 JPEGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gptfl_ray.data.base import Dataset, carve_validation
from gptfl_ray.errors import ConfigError

DEFAULT_DATA_DIR = "~/.cache/gptfl-ray/data"
FLOWERS_IMAGE_SIZE = 64

MNIST_CLASS_NAMES = tuple(str(i) for i in range(10))
# torchvision's Flowers102.classes (newer releases only) in label order; the one name it ends
# with "?" ("pink-yellow dahlia?", from the original list) loses it, as names become prompts.
FLOWERS102_CLASS_NAMES = (
    "pink primrose",
    "hard-leaved pocket orchid",
    "canterbury bells",
    "sweet pea",
    "english marigold",
    "tiger lily",
    "moon orchid",
    "bird of paradise",
    "monkshood",
    "globe thistle",
    "snapdragon",
    "colt's foot",
    "king protea",
    "spear thistle",
    "yellow iris",
    "globe-flower",
    "purple coneflower",
    "peruvian lily",
    "balloon flower",
    "giant white arum lily",
    "fire lily",
    "pincushion flower",
    "fritillary",
    "red ginger",
    "grape hyacinth",
    "corn poppy",
    "prince of wales feathers",
    "stemless gentian",
    "artichoke",
    "sweet william",
    "carnation",
    "garden phlox",
    "love in the mist",
    "mexican aster",
    "alpine sea holly",
    "ruby-lipped cattleya",
    "cape flower",
    "great masterwort",
    "siam tulip",
    "lenten rose",
    "barbeton daisy",
    "daffodil",
    "sword lily",
    "poinsettia",
    "bolero deep blue",
    "wallflower",
    "marigold",
    "buttercup",
    "oxeye daisy",
    "common dandelion",
    "petunia",
    "wild pansy",
    "primula",
    "sunflower",
    "pelargonium",
    "bishop of llandaff",
    "gaura",
    "geranium",
    "orange dahlia",
    "pink-yellow dahlia",
    "cautleya spicata",
    "japanese anemone",
    "black-eyed susan",
    "silverbush",
    "californian poppy",
    "osteospermum",
    "spring crocus",
    "bearded iris",
    "windflower",
    "tree poppy",
    "gazania",
    "azalea",
    "water lily",
    "rose",
    "thorn apple",
    "morning glory",
    "passion flower",
    "lotus",
    "toad lily",
    "anthurium",
    "frangipani",
    "clematis",
    "hibiscus",
    "columbine",
    "desert-rose",
    "tree mallow",
    "magnolia",
    "cyclamen",
    "watercress",
    "canna lily",
    "hippeastrum",
    "bee balm",
    "ball moss",
    "foxglove",
    "bougainvillea",
    "camellia",
    "mallow",
    "mexican petunia",
    "bromelia",
    "blanket flower",
    "trumpet creeper",
    "blackberry lily",
)

_STATS = {  # per-channel mean/std of the training pixels, the values the literature uses
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "flowers102": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's, as is usual
}


def data_root(data_dir: str | Path | None) -> Path:
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()


def _open(name: str, cls, root: Path, download: bool, **kwargs):
    """Construct a torchvision data set, turning its failures into one-line ConfigErrors."""
    if download:
        try:
            return cls(str(root), download=True, **kwargs)
        except Exception as e:  # urllib, http.client, md5 mismatch, mirrors exhausted ...
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
            # MNIST's error is "Error downloading X:" then per-mirror lines; the last says why
            reason = lines[0] + (f" {lines[-1]}" if lines[0].endswith(":") and len(lines) > 1 else "")
            reason = reason[:240]
            raise ConfigError("data.download", f"could not fetch {name} into {root}: {reason} (needs network)") from e
    try:
        return cls(str(root), download=False, **kwargs)
    except RuntimeError as e:
        raise ConfigError(
            "data.data_dir", f"{name} not found under {root} (pass `data.download` to fetch it, needs network)"
        ) from e


def _with_validation(name: str, class_names, x_train, y_train, x_test, y_test, seed: int, extra=None) -> Dataset:
    train, val = carve_validation(y_train, seed)
    mean, std = _STATS[name]
    return Dataset(
        name=name,
        modality="image",
        class_names=tuple(class_names),
        x_train=x_train[train],
        y_train=y_train[train],
        x_test=x_test,
        y_test=y_test,
        x_val=x_train[val],
        y_val=y_train[val],
        max_value=255.0,
        mean=mean,
        std=std,
        extra={**(extra or {}), "split_seed": int(seed)},
    )


def _images(name: str, class_names, train, test, seed: int, x_key=lambda ds: np.asarray(ds.data)) -> Dataset:
    def nchw(ds):
        x = x_key(ds)
        return np.ascontiguousarray(x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2), dtype=np.uint8)

    def labels(ds):
        return np.asarray(ds.targets, dtype=np.int64)

    return _with_validation(name, class_names, nchw(train), labels(train), nchw(test), labels(test), seed)


def load_mnist(data_dir=None, download: bool = False, seed: int = 0, **_) -> Dataset:
    from torchvision.datasets import MNIST

    root = data_root(data_dir)
    train = _open("mnist", MNIST, root, download, train=True)
    test = _open("mnist", MNIST, root, False, train=False)
    return _images("mnist", MNIST_CLASS_NAMES, train, test, seed, x_key=lambda ds: ds.data.numpy())


def _cifar(name: str, cls_name: str, data_dir, download: bool, seed: int) -> Dataset:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    root = data_root(data_dir)
    train = _open(name, cls, root, download, train=True)
    test = _open(name, cls, root, False, train=False)
    return _images(name, train.classes, train, test, seed)


def load_cifar10(data_dir=None, download: bool = False, seed: int = 0, **_) -> Dataset:
    return _cifar("cifar10", "CIFAR10", data_dir, download, seed)


def load_cifar100(data_dir=None, download: bool = False, seed: int = 0, **_) -> Dataset:
    return _cifar("cifar100", "CIFAR100", data_dir, download, seed)


def load_flowers102(
    data_dir=None, download: bool = False, seed: int = 0, image_size: int = FLOWERS_IMAGE_SIZE, **_
) -> Dataset:
    from torchvision.datasets import Flowers102

    root = data_root(data_dir)
    splits = {
        s: _open("flowers102", Flowers102, root, download and s == "train", split=s) for s in ("train", "val", "test")
    }
    cache = root / "flowers-102" / f"gptfl_{image_size}px.npz"
    if cache.is_file():
        with np.load(cache) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        arrays = {}
        for s, ds in splits.items():
            arrays[f"x_{s}"], arrays[f"y_{s}"] = _decode_resized(ds, image_size)
        try:
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(cache)  # atomic: an interrupted write never leaves a torn cache
        except OSError:
            pass  # a read-only data dir only costs the decode next time
    return _with_validation(
        "flowers102",
        FLOWERS102_CLASS_NAMES,
        np.concatenate([arrays["x_train"], arrays["x_val"]]),
        np.concatenate([arrays["y_train"], arrays["y_val"]]),
        arrays["x_test"],
        arrays["y_test"],
        seed,
        extra={"image_size": image_size},
    )


def _decode_resized(ds, size: int) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize

    fit = Compose([Resize(size, interpolation=InterpolationMode.BILINEAR), CenterCrop(size)])
    x = np.empty((len(ds), 3, size, size), np.uint8)
    y = np.empty(len(ds), np.int64)
    for i in range(len(ds)):
        img, label = ds[i]
        x[i] = np.asarray(fit(img.convert("RGB")), np.uint8).transpose(2, 0, 1)
        y[i] = label
    return x, y
