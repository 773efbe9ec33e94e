"""Sampling knows what it will allocate before it allocates: a small file at a huge resolution,
or a huge number of images, is one message naming the numbers, not an allocator error."""

import pytest
from click.testing import CliRunner

from stagegen.cli import cli
from stagegen.config import PipelineConfig
from stagegen.pipeline import Pipeline
from stagegen.pipeline.memory import activation_bytes_per_image

from ..conftest import tiny_pipeline_config
from ..hostile import run_bounded

NARROW = {"width": 1, "blocks": 1, "head_width": 0, "scale": 4}


@pytest.fixture(scope="module")
def narrow_4096(tmp_path_factory):
    """A valid file of 25 KB: width-1 layers, three x4 refiners from 64 to 4096 pixels."""
    config = PipelineConfig.model_validate(
        {
            "image_size": 4096,
            "channels": 3,
            "stages": [{"type": "vae", "options": {"widths": [1, 1], "latent_dim": 2}}]
            + [{"type": "resnet-l1", "options": NARROW}] * 3,
        }
    )
    path = tmp_path_factory.mktemp("narrow") / "narrow.safetensors"
    Pipeline(config).eval().save(path)
    assert path.stat().st_size < 64 * 1024
    return path


def test_sampling_a_small_file_at_4096_pixels_is_refused_with_the_numbers(narrow_4096, tmp_path):
    code = "from stagegen.cli import cli\ncli(['sample', sys.argv[1], '-n', '16', '-o', sys.argv[2]], standalone_mode=True)\n"
    proc = run_bounded(code, str(narrow_4096), str(tmp_path / "out"), memory_bytes=2**30, timeout=120)  # a folder: no grid
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "decoding 16 images of 4096x4096 through 4 stage(s) needs about" in last and "GiB available" in last
    assert "unexpected" not in proc.stderr and "allocate" not in proc.stderr
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_the_activation_bound_reads_widths_and_resolutions_without_running():
    pipe = Pipeline(tiny_pipeline_config(("vae", "resnet-l1"), image_size=16))
    # the trunk's widest layer (widths [8, 16]) counted at its 16 x 16 output: three float32 maps
    assert activation_bytes_per_image(pipe) == 3 * 16 * 16**2 * 4
    wide = Pipeline(tiny_pipeline_config(("vae", "resnet-l1"), image_size=32))
    assert activation_bytes_per_image(wide) == 4 * activation_bytes_per_image(pipe)  # grows with the pixels


def test_a_billion_samples_are_refused_before_the_latents_are_drawn(tmp_path):
    path = Pipeline(tiny_pipeline_config()).eval().save(tmp_path / "p.safetensors")
    code = "import stagegen\nstagegen.load(sys.argv[1]).sample(10**9)\n"
    proc = run_bounded(code, str(path), memory_bytes=2**30, timeout=120)
    assert proc.returncode == 1
    assert "ValueError: decoding 1,000,000,000 images of 16x16" in proc.stderr and "MemoryError" not in proc.stderr


def test_a_grid_too_large_to_look_at_is_refused_before_sampling(tmp_path):
    path = Pipeline(tiny_pipeline_config()).eval().save(tmp_path / "p.safetensors")
    result = CliRunner().invoke(cli, ["sample", str(path), "-n", "2000000", "-o", str(tmp_path / "s.png")])
    assert result.exit_code == 1 and "a grid of 125,000 row(s) x 16 images" in result.stderr
    result = CliRunner().invoke(cli, ["interpolate", str(path), "--rows", "100000", "-o", str(tmp_path / "i.png")])
    assert result.exit_code == 2 and "100000 is not in the range 1<=x<=256" in result.stderr


def test_sample_wraps_a_long_grid_into_rows(tmp_path):
    from PIL import Image

    path = Pipeline(tiny_pipeline_config()).eval().save(tmp_path / "p.safetensors")
    result = CliRunner().invoke(cli, ["sample", str(path), "-n", "64", "-o", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert "64 images, 16 per row" in result.output
    width, height = Image.open(tmp_path / "s.png").size
    assert (width, height) == (16 * 50 + 2, 4 * 50 + 2)  # 48-pixel images and 2-pixel gaps
    result = CliRunner().invoke(
        cli, ["sample", str(path), "-n", "10", "--all-stages", "--per-row", "5", "-o", str(tmp_path / "a.png")]
    )
    width, height = Image.open(tmp_path / "a.png").size
    assert result.exit_code == 0 and height == 4 * 50 + 2  # 2 blocks x 2 stages
    assert width > 5 * 50 + 2  # five images a row, and a margin naming each row's stage
