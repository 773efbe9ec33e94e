"""`stagegen sample`, `reconstruct` and `interpolate`: pictures from a pipeline file."""

from __future__ import annotations

from pathlib import Path

import click

from .app import SEED, cli, data_options, grid_path, real_for


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=16, show_default=True, help="number of images")
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(),
    help="a grid image (.png, .jpg, .webp, ...), or a folder (no suffix) for one file per image",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True, help="scale of the prior latents")
@click.option("--all-stages", is_flag=True, help="one grid row per stage (coarse to fine)")
@click.option(
    "--per-row",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="images per grid row; more wrap into further rows (with --all-stages, blocks of one row per stage)",
)
@click.option(
    "--label",
    metavar="NAME|INDEX|all",
    help="draw from one label's prior (a pipeline with a conditional prior; `stagegen info` lists its labels); "
    "all: one row of -n images per label",
)
@click.option(
    "--attribute",
    "attribute",
    metavar="NAME[=S],...",
    help="move every sample along attribute directions (a pipeline with them, as one trained on CelebA with its "
    "attribute list): Eyeglasses, or Smiling=1.5,Male=-1 (strength 1 unless given)",
)
@click.option("--device", default="cpu", show_default=True)
def sample(pipeline, n, out, seed, temperature, all_stages, per_row, label, attribute, device):
    """Draw images from a trained pipeline (of one label, or of every label, with --label)."""
    from .. import load
    from ..images import MIN_GRID_IMAGE, check_grid_size, image_format, save_grid, save_image

    out = Path(out)
    if out.suffix:
        image_format(out)  # an unwritable name fails before the work, not after it
    elif out.exists() and not out.is_dir():
        raise click.BadParameter(
            f"{out} is a file; give a folder (no suffix) for one image per file, or a grid name such as {out}.png",
            param_hint="-o",
        )
    pipe = load(pipeline, device=device)
    wanted = chosen_labels(pipe, label)
    strengths = chosen_attributes(pipe, attribute)
    blocks = len(wanted) if wanted else 1
    if out.suffix:  # the grid's size is known before any image is made
        lines = blocks * -(-n // per_row) * (len(pipe.specs) if all_stages else 1)
        check_grid_size(lines, min(n, per_row), max(pipe.resolutions[-1], MIN_GRID_IMAGE))
    # each label's images from the same seed: a grid's columns differ by label, not by noise
    drawn = [
        (name, pipe.sample(n, seed=seed, temperature=temperature, return_stages=True, label=name, attributes=strengths))
        for name in (wanted or [None])
    ]
    if out.suffix:  # a grid, in the format the suffix names
        rows, labels = [], []
        for name, stages in drawn:
            rows += stages if all_stages else [stages[-1]]
            prefix = "" if name is None else f"label {name}" + (": " if all_stages else "")
            labels += [prefix + row for row in pipe.row_labels()] if all_stages else [prefix]
        save_grid(rows, out, per_row=per_row, labels=labels if any(labels) else None)
        what = f"{len(pipe.specs)} stage(s) x {n} images" if all_stages else f"{n} images"
        what = f"{len(wanted)} label(s) x {what}" if wanted else what
        click.echo(f"wrote {out} ({what}, {min(n, per_row)} per row)")
    else:
        out.mkdir(parents=True, exist_ok=True)
        written = 0
        for name, stages in drawn:
            chosen = list(enumerate(stages)) if all_stages else [(len(stages) - 1, stages[-1])]
            prefix = "" if name is None else f"label-{safe_file_part(name)}_"
            for s, images in chosen:
                for i, image in enumerate(images):
                    save_image(image, out / (prefix + (f"stage{s}_{i:05d}.png" if all_stages else f"{i:05d}.png")))
                    written += 1
        click.echo(f"wrote {written} images to {out}")


def chosen_labels(pipe, label: str | None) -> list[str]:
    """The label names ``--label`` asks for (every one for ``all``); none without the option.
    Refused, before any work, for a pipeline without a conditional prior or an unknown label."""
    if label is None:
        return []
    if not pipe.labels:
        from ..priors.per_label import NO_CONDITIONAL_PRIOR

        raise click.BadParameter(NO_CONDITIONAL_PRIOR, param_hint="--label")
    if label == "all":
        return list(pipe.labels)
    try:
        from ..data.labels import resolve_label

        return [pipe.labels[resolve_label(pipe.labels, label)]]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--label") from None


def chosen_attributes(pipe, text: str | None) -> dict[str, float] | None:
    """``--attribute``'s strengths by attribute, checked against the pipeline before any work."""
    if text is None:
        return None
    from ..priors.directions import parse_strengths

    try:
        strengths = parse_strengths(text)
        pipe.attribute_shift(strengths)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--attribute") from None
    return strengths


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@data_options
@click.option(
    "-n", "--num", "n", type=click.IntRange(1, 256), default=4, show_default=True, help="dataset images to edit (no IMAGES)"
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="which dataset images (a seeded subset)")
@click.option(
    "--attribute",
    "attribute",
    required=True,
    metavar="NAME[=S],...",
    help="the edit: Smiling=+1.5 (toward smiling, 1.5 times the direction), Eyeglasses,Male=-1 ...",
)
@click.option("--steps", type=click.IntRange(2, 64), default=6, show_default=True, help="images from no edit to the full one")
@click.option(
    "--crop",
    type=click.IntRange(min=1),
    help="center square crop (pixels) before resizing; default: as the pipeline's dataset (--data, else the one it "
    "was trained on) reads an image file: CelebA's 148 at 64x64, a folder's largest centered square, ...",
)
@click.option("-o", "--out", required=True, type=click.Path(), callback=grid_path, help="output image (.png, ...)")
@click.option("--device", default="cpu", show_default=True)
def edit(pipeline, images, data_name, data_root, split, n, seed, attribute, steps, crop, out, device):
    """Move images (files, or without any, -n images of the pipeline's dataset) along attribute
    directions: one row of edits per image and stage, from its reconstruction to the full edit."""
    import torch

    from .. import load
    from ..images import MIN_GRID_IMAGE, check_grid_size, resize, save_grid

    pipe = load(pipeline, device=device)
    strengths = chosen_attributes(pipe, attribute)
    check_grid_size((len(images) or n) * len(pipe.specs), steps + 1, max(pipe.resolutions[-1], MIN_GRID_IMAGE))
    if images:
        pictures, names, known = _read_images(pipe, images, crop, data_name), [Path(p).name for p in images], None
    else:
        pictures, known = real_for(pipe, data_name, data_root, split, n, seed)
        names = [f"{split} image {i + 1}" for i in range(len(pictures))]
    stages = pipe.edit(pictures, strengths, steps, labels=known)
    rows, labels = [], []
    for i, name in enumerate(names):
        for label, stage, resolution in zip(pipe.row_labels(), stages, pipe.resolutions):
            # each row starts from the photo itself (at the stage's resolution), then its edits
            photo = resize(pictures[i : i + 1], resolution).clamp(0, 1).to(stage.device, stage.dtype)
            rows.append(torch.cat([photo, stage[i * steps : (i + 1) * steps]]))
            labels.append(f"{name}: {label}" if len(names) > 1 else label)
    save_grid(rows, out, labels=labels)
    what = ", ".join(f"{name} {value:+g}" for name, value in strengths.items())
    click.echo(
        f"wrote {out} ({len(names)} image(s) x {len(pipe.specs)} stage(s)): each row is the input image, then "
        f"{steps} steps from its reconstruction (no edit) to {what}"
    )


def _read_images(pipe, images, crop, data_name=None):
    """Image files as the pipeline's training saw its images: cropped (``crop`` pixels, else as
    its dataset, ``data_name`` or the one the file records, reads an image file), resized, in [0, 1]."""
    import torch

    from ..data.decode import ImageTransform, decode_image

    size, channels = pipe.config.image_size, pipe.config.channels
    transform = ImageTransform(size, channels, crop) if crop is not None else _file_transform(pipe, data_name)
    pictures = []
    for path in images:
        try:
            pictures.append(decode_image(Path(path).read_bytes(), transform).float() / 255)
        except Exception as exc:  # a corrupt or foreign file: say which, and that nothing was written
            detail = str(exc).split(" <_io.")[0]  # Pillow names its buffer object: no help to anyone
            raise click.BadParameter(
                f"{path} is not a readable image ({type(exc).__name__}: {detail})", param_hint="IMAGES"
            ) from None
    return torch.stack(pictures)


def _file_transform(pipe, data_name):
    """How the pipeline's dataset reads one image file; the largest centred square where the
    dataset is not named or not installed (a loose file needs no dataset to be edited)."""
    from ..data.decode import ImageTransform
    from ..plugin.manager import PluginError, get_dataset_type

    name = data_name or (pipe.file_metadata.get("extra") or {}).get("data")
    size, channels = pipe.config.image_size, pipe.config.channels
    try:
        dataset_type = get_dataset_type(name) if isinstance(name, str) else None
    except PluginError:
        dataset_type = None
    return dataset_type.image_transform(size, channels) if dataset_type is not None else ImageTransform(size, channels)


def safe_file_part(name: str) -> str:
    """A label name as part of a file name (a folder's class names are file names already)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80] or "_"


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@data_options
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=10, show_default=True, help="images to reconstruct")
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(),
    callback=grid_path,
    help="output image (.png, ...): input row, then one row per stage",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="which images (a seeded subset)")
@click.option("--device", default="cpu", show_default=True)
def reconstruct(pipeline, data_name, data_root, split, n, out, seed, device):
    """Reconstruct dataset images: input row, then each stage (the paper's Figures 4 to 7)."""
    from .. import load
    from ..images import save_grid

    pipe = load(pipeline, device=device)
    x, known = real_for(pipe, data_name, data_root, split, n, seed)
    save_grid([x, *pipe.reconstruct(x, return_stages=True, labels=known)], out, labels=["input", *pipe.row_labels()])
    click.echo(f"wrote {out} (input row + {len(pipe.specs)} stage rows x {len(x)} images)")


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@data_options
@click.option("--steps", type=click.IntRange(2, 256), default=10, show_default=True, help="images per interpolation row")
@click.option("--rows", type=click.IntRange(1, 256), default=4, show_default=True, help="number of interpolations")
@click.option("--from-data/--random", "from_data", default=False, help="between encoded dataset images, or random latents")
@click.option("-o", "--out", required=True, type=click.Path(), callback=grid_path, help="output image (.png, ...)")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--all-stages", is_flag=True, help="show every stage's output (rows grouped per interpolation)")
@click.option("--device", default="cpu", show_default=True)
def interpolate(pipeline, data_name, data_root, split, steps, rows, from_data, out, seed, all_stages, device):
    """Spherical interpolation in latent space, between dataset images or random points."""
    from .. import load
    from ..images import MIN_GRID_IMAGE, check_grid_size, save_grid

    pipe = load(pipeline, device=device)
    pipe.check_decode_memory(rows * steps, return_stages=all_stages)  # every row is kept for the grid
    check_grid_size(rows * (len(pipe.specs) if all_stages else 1), steps, max(pipe.resolutions[-1], MIN_GRID_IMAGE))
    # a label-conditioned trunk decodes each path with one class: its first image's, or the classes in turn
    classes = [r % len(pipe.labels) for r in range(rows)] if pipe.label_conditioned else [None] * rows
    if from_data:
        x, known = real_for(pipe, data_name, data_root, split, 2 * rows, seed)
        ends = pipe.encode(x, known).mean
        if pipe.label_conditioned:
            classes = [int(known[2 * r]) for r in range(rows)]
    else:
        import torch

        ends = pipe.prior.sample(2 * rows, torch.Generator().manual_seed(seed)).to(pipe.device)
    grid_rows, row_labels = [], []
    ends_from = f"{split} images" if from_data else "prior samples"
    for r in range(rows):
        stages = pipe.interpolate(ends[2 * r], ends[2 * r + 1], steps=steps, return_stages=True, label=classes[r])
        path = f"{ends_from} {2 * r + 1} to {2 * r + 2}"
        if classes[r] is not None:
            path += f", label {pipe.labels[classes[r]]}"
        grid_rows += stages if all_stages else [stages[-1]]
        row_labels += [f"{path}: {label}" for label in pipe.row_labels()] if all_stages else [path]
    save_grid(grid_rows, out, labels=row_labels)
    click.echo(f"wrote {out} ({rows} interpolations of {steps} images)")
