"""A prior per label, fitted ex post: it samples each label's region of latent space, lives in
the pipeline file beside the unconditional prior, and is refused by name when broken."""

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

import stagegen
from stagegen.config import PipelineConfig
from stagegen.data.labels import Labels
from stagegen.pipeline import Pipeline
from stagegen.pipeline.file import PipelineFileError
from stagegen.priors import PriorFitError, encode_dataset, fit_prior
from stagegen.priors.per_label import fit_conditional_prior

from ..conftest import tiny_pipeline_config


def _pipeline(prior="gmm"):
    config = tiny_pipeline_config(("vae",)).model_dump()
    config["prior"] = {"type": prior, "options": {"components": 2} if prior == "gmm" else {}}
    return Pipeline(PipelineConfig.model_validate(config), for_training=False).eval()


def _two_classes(n=40):
    """Dark and light images, labelled so: the trunk encodes them to different latents."""
    generator = torch.Generator().manual_seed(0)
    dark = torch.rand(n, 1, 16, 16, generator=generator) * 0.2
    light = 0.8 + torch.rand(n, 1, 16, 16, generator=generator) * 0.2
    images = torch.cat([dark, light])
    return images, Labels(("dark", "light"), torch.tensor([0] * n + [1] * n))


def test_each_label_samples_its_own_region_of_latent_space():
    pipe = _pipeline()
    images, labels = _two_classes()
    fit_prior(pipe, images)
    unconditional = {k: v.clone() for k, v in pipe.prior.state_dict().items()}
    stats = fit_conditional_prior(pipe, images, labels)
    assert stats["conditional_labels"] == 2 and stats["conditional_fewest_images"] == 40
    assert pipe.labels == ("dark", "light") and pipe.config.conditional.prior.type == "gmm"
    # the unconditional prior is untouched by the fit per label
    assert all(torch.equal(v, pipe.prior.state_dict()[k]) for k, v in unconditional.items())
    means = encode_dataset(pipe, images).mean
    centre = {name: means[labels.index == i].mean(0) for i, name in enumerate(labels.names)}
    for name, other in (("dark", "light"), ("light", "dark")):
        z = pipe.conditional.sample(200, name, torch.Generator().manual_seed(1)).flatten(1)
        nearer = (z - centre[name]).norm(dim=1) < (z - centre[other]).norm(dim=1)
        assert nearer.float().mean() > 0.95, name
    # sampling a label decodes that label's latents, by name or by index
    z = pipe.conditional.sample(4, "light", torch.Generator().manual_seed(5))
    assert torch.equal(pipe.sample(4, seed=5, label="light"), pipe.decode(z))
    assert torch.equal(pipe.sample(4, seed=5, label=1), pipe.decode(z))


def test_the_conditional_prior_is_saved_with_the_pipeline_and_samples_the_same(tmp_path):
    pipe = _pipeline()
    images, labels = _two_classes()
    fit_prior(pipe, images)
    fit_conditional_prior(pipe, images, labels)
    path = pipe.save(tmp_path / "p.safetensors")
    loaded = stagegen.load(path, channels_last=False)
    assert loaded.labels == ("dark", "light")
    assert torch.equal(loaded.sample(8, seed=3, label="light"), pipe.sample(8, seed=3, label="light"))
    assert torch.equal(loaded.sample(8, seed=3), pipe.sample(8, seed=3))  # unconditional sampling as before
    assert any(k.startswith("conditional.priors.1.") for k in load_file(path))


def test_a_file_without_one_samples_as_before_and_says_how_to_fit_one(tmp_path):
    pipe = _pipeline("normal")
    path = pipe.save(tmp_path / "p.safetensors")
    loaded = stagegen.load(path)
    assert loaded.labels == () and loaded.sample(2, seed=0).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"no conditional prior.*stagegen fit-prior PIPELINE --conditional"):
        loaded.sample(2, label=3)


def test_a_broken_conditional_prior_in_a_file_is_refused_by_label(tmp_path):
    pipe = _pipeline()
    images, labels = _two_classes()
    fit_conditional_prior(pipe, images, labels)
    path = pipe.save(tmp_path / "p.safetensors")
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        metadata = json.loads(f.read(length))["__metadata__"]
    tensors = load_file(path)
    tensors["conditional.priors.1.weights"] = torch.tensor([1.5, -0.5])  # finite, but not a distribution
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(
        PipelineFileError, match=r"conditional prior is unusable: the prior of label 'light': weights holds 1 negative"
    ):
        stagegen.load(path)


def test_too_few_images_of_a_label_or_a_prior_with_nothing_to_fit_are_refused():
    pipe = _pipeline()
    images, _ = _two_classes(4)
    lonely = Labels(("dark", "light", "emu"), torch.tensor([0] * 4 + [1] * 3 + [2]))
    with pytest.raises(PriorFitError, match=r"too few images of 1 label\(s\), 'emu' \(1\)"):
        fit_conditional_prior(pipe, images, lonely)
    assert pipe.conditional is None and pipe.config.conditional is None  # nothing changed
    with pytest.raises(PriorFitError, match="the normal prior has nothing to fit.*--prior gmm"):
        fit_conditional_prior(_pipeline("normal"), *_two_classes(4))
    with pytest.raises(ValueError, match="3 labels for 8 images"):
        fit_conditional_prior(pipe, images, Labels(("a", "b"), torch.tensor([0, 1, 1])))


def test_a_long_per_label_fit_says_how_far_it_is_and_a_refusal_lists_a_few_labels(monkeypatch):
    """1,000 labels took 190 s in silence; 10,000 scarce labels made a 129 KB error."""
    import stagegen.priors.per_label as conditional
    from stagegen.priors import LatentSet
    from stagegen.priors.per_label import fit_label_priors, label_prior_spec

    pipe = Pipeline(tiny_pipeline_config(("vae",)))
    pipe.set_prior({"type": "gmm", "options": {"components": 1}})
    n, dim = 40, pipe.prior.latent_dim
    latents = LatentSet(torch.randn(n, dim), torch.rand(n, dim) + 0.1, torch.arange(n))
    labels = Labels(tuple(f"c{i}" for i in range(20)), torch.arange(n) % 20)
    monkeypatch.setattr(conditional, "PROGRESS_EVERY", 0.0)
    lines = []
    fit_label_priors(pipe, latents, labels, label_prior_spec(pipe), progress=lines.append)
    assert len(lines) == 19 and lines[0].startswith("fitted the priors of 1 of 20 labels in") and "s to go" in lines[-1]

    scarce = Labels(tuple(f"c{i}" for i in range(40)), torch.arange(n))
    with pytest.raises(PriorFitError) as refused:
        fit_label_priors(pipe, latents, scarce, label_prior_spec(pipe))
    message = str(refused.value)
    assert "too few images of 40 label(s), 'c0' (1)" in message and "... (40 in all)" in message and len(message) < 600
