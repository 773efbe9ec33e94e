"""Attribute directions: the mean latent of images with an attribute minus that of images
without it, stored in the pipeline file; samples and edits move along them."""

import pytest
import torch

import stagegen
from stagegen.data.attributes import Attributes
from stagegen.pipeline import Pipeline
from stagegen.priors import encode_dataset
from stagegen.priors.directions import fit_attribute_directions, parse_strengths

from ..conftest import tiny_pipeline_config


def _pipeline():
    return Pipeline(tiny_pipeline_config(("vae", "resnet-l1")), for_training=False).eval()


def _faces(n=30):
    """Images with a bright top half ("Bright") or not, and a third of them unlabelled."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 16, 16, generator=generator) * 0.3
    bright = torch.arange(n) % 2 == 0
    images[bright, :, :8] += 0.7
    known = torch.arange(n) % 3 != 0
    values = torch.stack([bright, torch.zeros(n, dtype=torch.bool)], 1)  # "Hat": nobody has one
    return images, Attributes(("Bright", "Hat"), values, known, "a partial file")


def test_a_direction_is_the_difference_of_the_mean_latents_with_and_without():
    pipe = _pipeline()
    images, attributes = _faces()
    directions, stats = fit_attribute_directions(pipe, images, attributes)
    assert stats == {"attribute_images": 20.0, "attributes_usable": 1.0}  # the known rows; Hat has no positives
    means = encode_dataset(pipe, images).mean
    use = attributes.known
    bright = attributes.values[:, 0]
    expected = means[use & bright].mean(0) - means[use & ~bright].mean(0)
    torch.testing.assert_close(directions.directions[0], expected, atol=1e-5, rtol=1e-5)
    assert directions.counts.tolist() == [[10, 10], [20, 0]]
    with pytest.raises(ValueError, match="attribute 'Hat' has no direction: its fit saw 0 image"):
        directions.shift({"Hat": 1.0})
    with pytest.raises(ValueError, match="unknown attribute 'Wig'; this pipeline's attributes are Bright, Hat"):
        directions.shift({"Wig": 1.0})


def test_samples_and_edits_move_along_it_and_it_is_saved(tmp_path):
    pipe = _pipeline()
    images, attributes = _faces()
    with pytest.raises(ValueError, match="no attribute directions.*fit-prior PIPELINE --conditional"):
        pipe.sample(2, attributes={"Bright": 1.0})
    directions, _ = fit_attribute_directions(pipe, images, attributes)
    pipe.set_attributes(directions)
    assert pipe.attribute_names == ("Bright", "Hat") and pipe.config.attributes == ["Bright", "Hat"]
    shift = directions.directions[0].reshape(pipe.trunk.latent_shape)
    z = pipe.prior.sample(3, torch.Generator().manual_seed(4))
    assert torch.equal(pipe.sample(3, seed=4, attributes={"Bright": 2.0}), pipe.decode(z + 2 * shift))
    # an edit: from the reconstruction (step 0) to the full strength, every stage
    stages = pipe.edit(images[:2], {"Bright": 1.5}, steps=4)
    assert len(stages) == 2 and stages[-1].shape == (8, 1, 16, 16)
    torch.testing.assert_close(stages[-1][0], pipe.reconstruct(images[:1])[0])
    start = pipe.trunk.reconstruction_latent(pipe.encode(images[1:2]))
    torch.testing.assert_close(stages[-1][7], pipe.decode(start + 1.5 * shift)[0])
    path = pipe.save(tmp_path / "p.safetensors")
    loaded = stagegen.load(path, channels_last=False)
    assert loaded.attribute_names == ("Bright", "Hat")
    assert torch.equal(loaded.attributes.directions, directions.directions)
    assert torch.equal(loaded.attributes.counts, directions.counts)


def test_strengths_are_read_as_users_write_them():
    assert parse_strengths("Eyeglasses") == {"Eyeglasses": 1.0}
    assert parse_strengths("Smiling=+1.5, Male=-1") == {"Smiling": 1.5, "Male": -1.0}
    with pytest.raises(ValueError, match="'Smiling=lots': give an attribute and an optional strength"):
        parse_strengths("Smiling=lots")
    for unbounded in ("nan", "inf", "3e38", "-21"):  # saturated images, not an edit
        with pytest.raises(ValueError, match="the strength must be a number from -20 to 20"):
            parse_strengths(f"Smiling={unbounded}")
    assert parse_strengths("Smiling=-20") == {"Smiling": -20.0}
    with pytest.raises(ValueError, match="no attribute given"):
        parse_strengths(" , ")


def test_an_unknown_attribute_is_named_escaped_and_the_list_is_bounded():
    from stagegen.priors.directions import AttributeDirections

    directions = AttributeDirections([f"a{i}" for i in range(40)], (4,))
    with pytest.raises(ValueError) as refused:
        directions.shift({"Smiling\x1b]0;pwned\x07": 1.0})
    message = str(refused.value)
    assert "\x1b" not in message and "\\x1b]0;pwned\\x07" in message
    assert "a19, ... (40 in all)" in message
    with pytest.raises(ValueError, match="the strength of a1 is 3e\\+38; give one from -20 to 20"):
        directions.shift({"a1": 3e38})
