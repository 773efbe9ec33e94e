"""Registers the built-in datasets through the same hook a third-party package uses."""

from ..hookspecs import hookimpl
from .registry import DatasetType


@hookimpl
def register_datasets(register):
    from .digits import DigitsOptions, build_digits

    register(
        DatasetType(
            name="digits",
            build=build_digits,
            options=DigitsOptions,
            description="scikit-learn's bundled 8x8 handwritten digits (1,797 images), resized; needs no files",
        )
    )
