"""The `stagegen` group, its error handling and the option types the commands share."""

from __future__ import annotations

import os
import sys
import time

import click

from ..text import safe_text

#: when this command started: a time budget (`train --time-budget`) counts from here
COMMAND_STARTED = time.monotonic()

SEED = click.IntRange(0, 2**63 - 1)  # what every generator we seed accepts
DEBUG_HINT = "run it again with --debug (or STAGEGEN_DEBUG=1) to see the traceback"


def _debugging(ctx: click.Context | None = None) -> bool:
    if os.environ.get("STAGEGEN_DEBUG", "") not in ("", "0"):
        return True
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


def _one_line(text: str) -> str:
    """Messages go out on one line, control characters escaped (a message may quote a file's text)."""
    return safe_text(" ".join(str(text).split()))


class _Errors(click.Group):
    """Every failure is one line on stderr, never a traceback unless asked for.

    Known user errors (bad input, files, plugins, data, weights, the machine) say what was wrong
    and what to do. Anything else is a bug in stagegen or a plugin: one line naming the
    exception plus how to see its traceback, so a bug is never dressed up as a user error."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as exc:  # its message may quote a name from a file or a folder
            exc.message = safe_text(exc.message)
            raise
        except BrokenPipeError:  # `stagegen info ... | head`: the reader left, nothing more to say
            sys.stdout = open(os.devnull, "w")
            sys.exit(0)
        except Exception as exc:
            if _debugging(ctx):
                raise
            raise click.ClickException(_message(exc)) from None


def _user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that are the user's to fix, imported only once one was raised: the
    modules that define them import torch, and `--help` or a mistyped flag must not wait for it."""
    from ..data.registry import DataError
    from ..optional import OptionalImportError
    from ..plugin.manager import PluginError
    from ..weights import MissingWeightsError

    return (ValueError, PluginError, DataError, MissingWeightsError, OptionalImportError)


def _message(exc: Exception) -> str:
    """The one line an error is told in: a user error says what was wrong and what to do; the
    machine's refusal names the path; anything else is a bug, said as one."""
    if isinstance(exc, _user_errors()):
        return _one_line(exc)
    if isinstance(exc, OSError):
        if exc.errno is None:  # ours, with its own message (no pipeline file at ...)
            return _one_line(exc)
        # the machine said no: a full disk, a permission, a folder where a file should be
        where = f" {exc.filename}:" if exc.filename else ""
        return _one_line(
            f"cannot write or read{where} {exc.strerror or exc}; check the path, its permissions and the free space there"
        )
    return _one_line(f"unexpected {type(exc).__name__}: {exc} (a bug in stagegen or a plugin; {DEBUG_HINT})")


@click.group(cls=_Errors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stagegen")
@click.option("--debug", is_flag=True, help="show the Python traceback of an error (also STAGEGEN_DEBUG=1)")
def cli(debug):
    """Coarse-to-fine image generation: a VAE trunk plus a chain of refiner plugins."""


def grid_path(ctx, param, value):
    """-o of a figure: a name whose suffix is an image format, checked before any work is done."""
    from ..images import image_format

    if value is not None:
        try:
            image_format(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def data_options(f, split: str = "test"):
    f = click.option(
        "--data", "data_name", help="dataset name (default: the one the pipeline file says it was trained on, else digits)"
    )(f)
    f = click.option(
        "--data-root", type=click.Path(), help="where the dataset's files are (default: the root the file recorded)"
    )(f)
    f = click.option("--split", default=split, show_default=True, help="train, val or test")(f)
    return f


def pipeline_data(pipe, data_name: str | None, data_root: str | None) -> tuple[str, str | None]:
    """The dataset a command on ``pipe`` reads: the one given, else the one its file says it was
    trained on (with the root it recorded, if that still exists), else the embedded digits; a
    choice not given on the command line is said on stderr."""
    extra = (getattr(pipe, "file_metadata", None) or {}).get("extra", {})
    trained_on, recorded_root = extra.get("data"), extra.get("data_root")
    if data_name is None:
        data_name = trained_on if isinstance(trained_on, str) else "digits"
        if isinstance(trained_on, str):
            from pathlib import Path

            if data_root is None and isinstance(recorded_root, str) and Path(recorded_root).exists():
                data_root = recorded_root
            where = f" from {data_root}" if data_root else ""
            click.echo(f"data: {data_name}{where}, the dataset the pipeline was trained on (--data chooses another)", err=True)
    return data_name, data_root


def real_for(pipe, data_name, data_root, split, n, seed=0):
    """Up to n images of the dataset split at the pipeline's format, in [0, 1], and their class
    indices (None for an unlabelled dataset; a label-conditioned trunk needs them)."""
    from ..data.real import labelled_real_images

    data_name, data_root = pipeline_data(pipe, data_name, data_root)
    images, labels = labelled_real_images(data_name, data_root, split, pipe.config.image_size, pipe.config.channels, n, seed=seed)
    if labels is None:
        return images, None
    if pipe.label_conditioned and labels.names != pipe.labels:
        raise click.BadParameter(
            f"the pipeline's trunk is conditioned on the labels {', '.join(pipe.labels[:10])}, and {data_name}'s are "
            f"{', '.join(labels.names[:10])}: evaluate it on the dataset it was trained on",
            param_hint="--data",
        )
    return images, labels.index
