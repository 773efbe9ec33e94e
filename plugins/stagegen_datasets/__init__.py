"""Registers the built-in datasets through the same hook a third-party package uses."""

from stagegen.data.registry import DatasetType
from stagegen.plugin import hookimpl


@hookimpl
def register_datasets(register):
    from stagegen.data.celeba import CelebAOptions, build_celeba, celeba_transform
    from stagegen.data.digits import DigitsOptions, build_digits
    from stagegen.data.folder import FolderOptions, build_folder, folder_transform
    from stagegen.data.mnist import MNISTOptions, build_mnist

    register(
        DatasetType(
            name="digits",
            build=build_digits,
            options=DigitsOptions,
            description="scikit-learn's bundled 8x8 handwritten digits (1,797 images), resized; needs no files",
            image_size=16,
            channels=1,
            default_preset="sharp-digits",
        )
    )
    register(
        DatasetType(
            name="mnist",
            build=build_mnist,
            options=MNISTOptions,
            description="MNIST from the four official idx files (.gz or not), flat or in MNIST/raw/",
            needs_root=True,
            image_size=28,
            channels=1,
            default_preset="sharp-mnist",
        )
    )
    register(
        DatasetType(
            name="celeba",
            build=build_celeba,
            options=CelebAOptions,
            description="CelebA aligned faces from img_align_celeba.zip (read in place) or its folder; official split",
            needs_root=True,
            image_size=64,
            channels=3,
            default_preset="sharp-celeba64",
            transform=celeba_transform,
        )
    )
    register(
        DatasetType(
            name="folder",
            build=build_folder,
            options=FolderOptions,
            description="any folder or .zip of images (recursive: PNG, JPEG, WebP, ...), deterministic split; "
            "trains RGB at 64x64 unless --image-size/--channels say otherwise",
            needs_root=True,
            image_size=64,
            channels=3,
            default_preset="sharp-celeba64",
            transform=folder_transform,
        )
    )
