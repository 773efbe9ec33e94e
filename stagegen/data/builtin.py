"""Registers the built-in datasets through the same hook a third-party package uses."""

from ..hookspecs import hookimpl
from .registry import DatasetType


@hookimpl
def register_datasets(register):
    from .celeba import CelebAOptions, build_celeba
    from .digits import DigitsOptions, build_digits
    from .folder import FolderOptions, build_folder
    from .mnist import MNISTOptions, build_mnist

    register(DatasetType("digits", build_digits, DigitsOptions,
                         "scikit-learn's bundled 8x8 handwritten digits (1,797 images), resized; needs no files",
                         image_size=16, channels=1, default_preset="sharp-digits"))
    register(DatasetType("mnist", build_mnist, MNISTOptions,
                         "MNIST from the four official idx files (.gz or not), flat or in MNIST/raw/", needs_root=True,
                         image_size=28, channels=1, default_preset="sharp-mnist"))
    register(DatasetType("celeba", build_celeba, CelebAOptions,
                         "CelebA aligned faces from img_align_celeba.zip (read in place) or its folder; official split",
                         needs_root=True, image_size=64, channels=3, default_preset="sharp-celeba64"))
    register(DatasetType("folder", build_folder, FolderOptions,
                         "any folder or .zip of images (recursive: PNG, JPEG, WebP, ...), deterministic split; "
                         "trains RGB at 64x64 unless --image-size/--channels say otherwise",
                         needs_root=True, image_size=64, channels=3, default_preset="sharp-celeba64"))
