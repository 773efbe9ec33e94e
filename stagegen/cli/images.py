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
@click.option("--device", default="cpu", show_default=True)
def sample(pipeline, n, out, seed, temperature, all_stages, per_row, device):
    """Draw images from a trained pipeline."""
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
    if out.suffix:  # the grid's size is known before any image is made
        lines = -(-n // per_row) * (len(pipe.specs) if all_stages else 1)
        check_grid_size(lines, min(n, per_row), max(pipe.resolutions[-1], MIN_GRID_IMAGE))
    stages = pipe.sample(n, seed=seed, temperature=temperature, return_stages=True)  # refused first if it cannot fit
    if out.suffix:  # a grid, in the format the suffix names
        rows = stages if all_stages else [stages[-1]]
        labels = pipe.row_labels() if all_stages else None
        save_grid(rows, out, per_row=per_row, labels=labels)
        what = f"{len(rows)} stage(s) x {n} images" if all_stages else f"{n} images"
        click.echo(f"wrote {out} ({what}, {min(n, per_row)} per row)")
    else:
        out.mkdir(parents=True, exist_ok=True)
        chosen = list(enumerate(stages)) if all_stages else [(len(stages) - 1, stages[-1])]
        for s, images in chosen:
            for i, image in enumerate(images):
                save_image(image, out / (f"stage{s}_{i:05d}.png" if all_stages else f"{i:05d}.png"))
        click.echo(f"wrote {n * len(chosen)} images to {out}")


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
    x = real_for(pipe, data_name, data_root, split, n, seed)
    save_grid([x, *pipe.reconstruct(x, return_stages=True)], out, labels=["input", *pipe.row_labels()])
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
    if from_data:
        ends = pipe.encode(real_for(pipe, data_name, data_root, split, 2 * rows, seed)).mean
    else:
        import torch

        ends = pipe.prior.sample(2 * rows, torch.Generator().manual_seed(seed)).to(pipe.device)
    grid_rows = []
    for r in range(rows):
        stages = pipe.interpolate(ends[2 * r], ends[2 * r + 1], steps=steps, return_stages=True)
        grid_rows += stages if all_stages else [stages[-1]]
    save_grid(grid_rows, out)
    click.echo(f"wrote {out} ({rows} interpolations of {steps} images)")
