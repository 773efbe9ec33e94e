"""The `stagegen` command: a thin click layer over the Python API, one module per group of commands."""

from . import evaluate, images, listing, report, train  # noqa: F401  (each registers its commands on the group)
from .app import cli


def main():
    cli(prog_name="stagegen")


__all__ = ["cli", "main"]
