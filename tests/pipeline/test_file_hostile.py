"""Pipeline files crafted to hurt: each is refused quickly, by a message naming what is wrong,
before it costs memory; nothing in a file is executed or trusted for its own sake."""

import json
import math
import os
import stat

import pytest
import torch
from safetensors.torch import save_file

import stagegen
from stagegen.pipeline import Pipeline
from stagegen.pipeline.file import PipelineFileError, read_header

from ..conftest import tiny_pipeline_config
from ..hostile import edit_document, edit_header, run_bounded, with_document_text


@pytest.fixture
def saved(tmp_path):
    pipe = Pipeline(tiny_pipeline_config(("vae", "resnet-l1"))).eval()
    return pipe, pipe.save(tmp_path / "p.safetensors")


def _options(i, **values):
    return lambda doc: doc["config"]["stages"][i]["options"].update(values)


# The sizes the issue reproduced (blocks=1e7 took 5.3 GB and 75 s; widths x 100,000 took 4.3 GB):
# each must now be refused within a second of work and far below the memory limit.
HOSTILE_CONFIGS = {
    "ten million blocks": (_options(1, blocks=10**7), "blocks"),
    "100,000 widths": (_options(0, widths=[8] * 100_000), "widths"),
    "latent_dim 1e9": (_options(0, latent_dim=10**9), "latent_dim"),
    "image_size 1e6": (lambda d: d["config"].update(image_size=10**6), "image_size"),
    # within every option's bounds, but a network of terabytes for a file of kilobytes
    "huge but valid": (
        lambda d: (d["config"].update(image_size=4096), _options(0, widths=[4096] * 3, latent_dim=65536)(d)),
        "MiB",
    ),
    "wide refiner": (_options(1, width=4096, head_width=8192, blocks=256), "MiB"),
    # a 3 MB header listing 20,000 refiners: every stage was built before the tensors were compared
    "20,000 refiners": (lambda d: d["config"]["stages"].extend([d["config"]["stages"][1]] * 20_000), "stages"),
}


@pytest.mark.parametrize("case", list(HOSTILE_CONFIGS))
def test_hostile_architecture_is_refused_before_allocating(saved, tmp_path, case):
    edit, word = HOSTILE_CONFIGS[case]
    path = edit_document(saved[1], tmp_path / "hostile.safetensors", edit)
    proc = run_bounded("stagegen.load(sys.argv[1])", str(path), memory_bytes=2**30, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("stagegen.pipeline.file.PipelineFileError") and word in last, proc.stderr[-2000:]
    assert "MemoryError" not in proc.stderr and "DefaultCPUAllocator" not in proc.stderr


def test_refusal_by_size_says_the_numbers(saved, tmp_path):
    edit, _ = HOSTILE_CONFIGS["wide refiner"]
    path = edit_document(saved[1], tmp_path / "h.safetensors", edit)
    with pytest.raises(PipelineFileError, match=r"network of [\d,]+ MiB but the file holds only [\d.]+ MiB"):
        stagegen.load(path)


def _resave(pipe, path, change):
    """The pipeline's tensors through ``change(name, tensor)``, written with its real header document."""
    from stagegen.pipeline.file import header_document

    state = {k: change(k, v.detach().clone().contiguous()) for k, v in pipe.state_dict().items()}
    save_file(state, str(path), metadata={"stagegen": json.dumps(header_document(pipe))})
    return path


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int8, torch.bool])
def test_wrong_dtype_is_refused_by_name(saved, tmp_path, dtype):
    pipe, _ = saved
    target = (
        "stages.0.to_mu.weight"
        if "stages.0.to_mu.weight" in pipe.state_dict()
        else next(k for k, v in pipe.state_dict().items() if v.is_floating_point())
    )
    path = _resave(pipe, tmp_path / "d.safetensors", lambda k, v: v.to(dtype) if k == target else v)
    with pytest.raises(PipelineFileError, match=f"tensor {target} is stored as") as err:
        stagegen.load(path)
    assert "F32" in str(err.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused_by_name(saved, tmp_path, value):
    pipe, _ = saved
    target = next(k for k, v in pipe.state_dict().items() if v.is_floating_point() and v.numel() > 3)

    def poison(k, v):
        if k == target:
            v.view(-1)[2] = value
        return v

    path = _resave(pipe, tmp_path / "n.safetensors", poison)
    with pytest.raises(PipelineFileError, match=f"tensor {target} holds 1 NaN or infinite"):
        stagegen.load(path)


@pytest.mark.parametrize(
    "case,edit,message",
    [
        ("format_version true", lambda d: d.update(format_version=True), "invalid format_version True"),
        ("format_version string", lambda d: d.update(format_version="1"), "invalid format_version"),
        ("config a string", lambda d: d.update(config="hello"), "no pipeline config"),
        ("no config", lambda d: d.pop("config"), "no pipeline config"),
        ("stages not a list", lambda d: d.update(stages={"0": 1}), "not a list of stage records"),
        ("record without index", lambda d: [r.pop("index") for r in d["stages"]], "no integer 'index'"),
        ("extra a list", lambda d: d.update(extra=[1]), "'extra' is not an object"),
    ],
)
def test_malformed_documents_are_refused_by_info_and_load(saved, tmp_path, case, edit, message):
    path = edit_document(saved[1], tmp_path / "m.safetensors", edit)
    with pytest.raises(PipelineFileError, match=message):
        read_header(path)
    with pytest.raises(PipelineFileError, match=message):
        stagegen.load(path)


def test_metadata_that_is_not_an_object_is_not_a_pipeline(saved, tmp_path):
    path = edit_header(saved[1], tmp_path / "m.safetensors", lambda h: h.update(__metadata__=["stagegen"]))
    with pytest.raises(PipelineFileError, match="not a stagegen pipeline"):
        read_header(path)


def test_deeply_nested_header_is_refused_not_a_recursion_error(saved, tmp_path):
    path = with_document_text(saved[1], tmp_path / "deep.safetensors", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(PipelineFileError, match="nested too deeply"):
        read_header(path)


def test_tensor_entry_without_shape_is_refused(saved, tmp_path):
    def edit(header):
        key = next(k for k in header if k != "__metadata__")
        header[key].pop("shape")

    path = edit_header(saved[1], tmp_path / "s.safetensors", edit)
    with pytest.raises(PipelineFileError, match="is malformed"):
        read_header(path)


def test_scale_zero_is_a_message_not_a_division_by_zero(saved, tmp_path):
    path = edit_document(saved[1], tmp_path / "z.safetensors", _options(1, scale=0))
    with pytest.raises(PipelineFileError, match="scale"):
        stagegen.load(path)


def test_pipeline_file_has_the_same_permissions_as_the_other_run_files(saved, tmp_path):
    _, path = saved
    other = tmp_path / "plain.txt"
    other.write_text("x")
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(other).st_mode)


def test_a_fifo_named_as_a_pipeline_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "p.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(PipelineFileError, match="is not a regular file"):
        read_header(fifo)  # opening it blocked forever before


def test_a_5000_digit_number_in_the_header_is_a_pipeline_file_error(saved, tmp_path):
    def huge(header):
        header["__metadata__"]["stagegen"] = header["__metadata__"]["stagegen"].replace(
            '"format_version": 1', '"format_version": ' + "9" * 5000
        )

    path = edit_header(saved[1], tmp_path / "h.safetensors", huge)
    with pytest.raises(PipelineFileError, match="the stagegen document in the header is not valid JSON"):
        stagegen.load(path)  # a plain ValueError "Exceeds the limit (4300 digits)" before
