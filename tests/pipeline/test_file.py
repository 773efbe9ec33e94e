import json
import pickle
import struct
import sys

import pytest
import torch

import stagegen
from stagegen.pipeline import Pipeline
from stagegen.pipeline.file import PipelineFileError, read_header

from ..conftest import tiny_pipeline_config


@pytest.fixture
def saved(tmp_path):
    pipe = Pipeline(tiny_pipeline_config(("vae", "resnet-l1", "resnet-l2"), scales=[2, 1], image_size=16)).eval()
    # give batch norm non-default statistics, so a load that dropped buffers would show
    with torch.no_grad():
        for m in pipe.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
    path = pipe.save(tmp_path / "p.safetensors")
    return pipe, path


def _rewrite_header(path, edit):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])


def _edit_document(path, change):
    """Rewrite the stagegen document in the header: ``change(doc)`` edits it in place."""

    def edit(header):
        doc = json.loads(header["__metadata__"]["stagegen"])
        change(doc)
        header["__metadata__"]["stagegen"] = json.dumps(doc)

    _rewrite_header(path, edit)


def test_save_then_load_gives_identical_outputs(saved):
    pipe, path = saved
    loaded = stagegen.load(path, channels_last=False)  # the same layout as the saved pipeline: bit for bit
    assert not loaded.training
    for a, b in zip(pipe.sample(5, seed=3, return_stages=True), loaded.sample(5, seed=3, return_stages=True)):
        assert torch.equal(a, b)
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(pipe.reconstruct(x), loaded.reconstruct(x))
    fast = stagegen.load(path)  # default channels-last layout: the same images up to float rounding
    assert torch.allclose(pipe.sample(5, seed=3), fast.sample(5, seed=3), atol=1e-5)


def test_decoding_in_chunks_gives_the_same_images(saved):
    pipe, _ = saved
    whole = pipe.sample(10, seed=4)
    pipe.cpu_chunk_size = 3
    assert torch.allclose(pipe.sample(10, seed=4), whole, atol=1e-6)


def test_header_records_versions_and_full_config(saved):
    _, path = saved
    doc = read_header(path).document.as_dict()
    assert doc["format_version"] == 1 and doc["stagegen_version"] == stagegen.__version__
    assert [s["type"] for s in doc["stages"]] == ["vae", "resnet-l1", "resnet-l2"]
    assert all(s["package"] == "stagegen" for s in doc["stages"])
    # defaults are written out: the file alone says how to rebuild the network
    assert doc["config"]["stages"][1]["options"]["leaky_slope"] == 0.3
    assert [s["resolution"] for s in doc["stages"]] == [8, 16, 16]


def test_tampered_shape_is_refused(saved):
    _, path = saved
    _edit_document(path, lambda doc: doc["config"]["stages"][0]["options"].update(latent_dim=9))
    with pytest.raises(PipelineFileError, match="shape"):
        stagegen.load(path)


def test_tampered_document_is_refused(saved):
    _, path = saved
    _rewrite_header(path, lambda h: h["__metadata__"].update(stagegen="{not json"))
    with pytest.raises(PipelineFileError, match="not valid JSON"):
        stagegen.load(path)


def test_invalid_config_in_file_names_the_key(saved):
    _, path = saved
    _edit_document(path, lambda doc: doc["config"]["stages"][1]["options"].update({"exec": "import os"}))
    with pytest.raises(PipelineFileError, match="unknown option 'exec'"):
        stagegen.load(path)


def test_truncated_file_is_refused(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PipelineFileError, match="truncated|damaged"):
        stagegen.load(path)
    path.write_bytes(data[:5])
    with pytest.raises(PipelineFileError, match="only 5 bytes"):
        stagegen.load(path)


def test_unknown_stage_names_the_missing_plugin_and_imports_nothing(saved):
    _, path = saved

    def change(doc):
        doc["config"]["stages"][2]["type"] = "evil_module_xyz"
        doc["stages"][2]["package"] = "evil-plugin"

    _edit_document(path, change)
    with pytest.raises(PipelineFileError, match="'evil_module_xyz'.*evil-plugin.*Install that plugin"):
        stagegen.load(path)
    assert "evil_module_xyz" not in sys.modules


class _Bomb:
    def __reduce__(self):
        return (open, (str(_Bomb.marker), "w"))


def test_pickle_file_is_refused_without_running_it(tmp_path):
    _Bomb.marker = tmp_path / "executed"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"weights": _Bomb()}))
    with pytest.raises(PipelineFileError):
        stagegen.load(path)
    assert not _Bomb.marker.exists()


def test_plain_safetensors_is_not_a_pipeline(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(PipelineFileError, match="not a stagegen pipeline"):
        stagegen.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pipeline file"):
        stagegen.load(tmp_path / "nothing.safetensors")


def test_loading_does_not_need_loss_networks(tmp_path):
    # a perceptual stage asking for pretrained weights that are not here: training could not
    # build it, but a saved pipeline loads for sampling, since the loss network is not rebuilt
    config = tiny_pipeline_config(("vae", "srresnet-perceptual"))
    pipe = Pipeline(config)
    perceptual = pipe.config.stages[1].losses[1]
    assert perceptual.type == "perceptual"
    perceptual.options["pretrained"] = True
    path = pipe.save(tmp_path / "p.safetensors")
    loaded = stagegen.load(path)
    assert loaded.sample(2, seed=0).shape == (2, 1, 16, 16)
    assert loaded.objective is None
    assert loaded.config.stages[1].losses[1].options["pretrained"] is True  # kept, for a resumed or new run


def test_the_header_says_who_provided_each_stage_and_the_prior(saved):
    _, path = saved
    doc = read_header(path).document.as_dict()
    assert [(r["type"], r["package"]) for r in doc["stages"]] == [
        ("vae", "stagegen"),
        ("resnet-l1", "stagegen"),
        ("resnet-l2", "stagegen"),
    ]
    assert doc["prior"] == {
        "type": "normal",
        "package": "stagegen",
        "package_version": stagegen.__version__,
        "fitted": True,  # a prior that needs no fit is always fitted
    }
    # the stored config lists every loss, so a file says how it was trained
    assert doc["config"]["stages"][1]["losses"] == [{"type": "l1", "name": None, "weight": 1.0, "options": {}}]
