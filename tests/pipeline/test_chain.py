import pytest
import torch

from stagegen.pipeline import Pipeline

from ..conftest import tiny_pipeline_config


@pytest.mark.parametrize(
    "stages,scales,size",
    [
        (("vae",), None, 16),
        (("vae", "resnet-l1"), None, 16),
        (("vae", "resnet-l1", "resnet-l2"), None, 16),
        (("vae", "resnet-l1", "resnet-l2", "resnet-l1"), None, 16),
        (("vae", "resnet-l1"), [2], 16),
        (("vae", "resnet-l1", "resnet-l2"), [2, 2], 32),
        (("vae", "resnet-l1", "resnet-l2", "resnet-l1"), [2, 1, 2], 32),
    ],
)
def test_shapes_for_0_to_3_refiners(stages, scales, size):
    pipe = Pipeline(tiny_pipeline_config(stages, image_size=size, scales=scales))
    scales = scales or [1] * (len(stages) - 1)
    total = 1
    for s in scales:
        total *= s
    expected = [size // total]
    for s in scales:
        expected.append(expected[-1] * s)
    assert pipe.resolutions == expected
    pipe.eval()
    outs = pipe.sample(3, seed=0, return_stages=True)
    assert [tuple(o.shape) for o in outs] == [(3, 1, r, r) for r in expected]
    assert all(0 <= o.min() and o.max() <= 1 for o in outs)
    x = torch.rand(2, 1, size, size)
    recon = pipe.reconstruct(x, return_stages=True)
    assert [tuple(o.shape) for o in recon] == [(2, 1, r, r) for r in expected]
    # training forward: one loss term per stage at least, each finite and named stageK/...
    pipe.train()
    out = pipe(x * 2 - 1)
    terms = pipe.objective.logged_terms(x * 2 - 1, out)
    for k in range(len(stages)):
        assert any(name.startswith(f"stage{k}/") for name in terms)
    assert all(torch.isfinite(v) for v in terms.values())


def test_sample_is_seeded():
    pipe = Pipeline(tiny_pipeline_config()).eval()
    assert torch.equal(pipe.sample(4, seed=1), pipe.sample(4, seed=1))
    assert not torch.equal(pipe.sample(4, seed=1), pipe.sample(4, seed=2))
    cold = pipe.sample(4, seed=1, temperature=0.0)
    assert torch.allclose(cold[0], cold[1])  # temperature 0: every latent is the prior mean


@pytest.mark.parametrize("detach", [False, True])
def test_gradient_reaches_trunk_only_when_joint(detach):
    pipe = Pipeline(tiny_pipeline_config(detach_input=detach)).train()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    out = pipe(x)
    terms = pipe.objective.logged_terms(x, out)
    terms["stage1/l1"].backward()
    decoder_grad = pipe.trunk.decoder[0].weight.grad
    reached = decoder_grad is not None and bool(decoder_grad.abs().sum() > 0)
    assert reached is (not detach)


def test_bad_images_are_refused_with_the_expected_shape():
    pipe = Pipeline(tiny_pipeline_config()).eval()
    with pytest.raises(ValueError, match="N x 1 x 16 x 16"):
        pipe.reconstruct(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="uint8"):
        pipe.reconstruct(torch.zeros(2, 1, 16, 16, dtype=torch.uint8))


def test_chain_rules():
    with pytest.raises(ValueError, match="first stage must be a trunk"):
        Pipeline(tiny_pipeline_config(("resnet-l1",)))
    with pytest.raises(ValueError, match="only the first stage may be a trunk"):
        Pipeline(tiny_pipeline_config(("vae", "vae")))
    with pytest.raises(ValueError, match="not divisible"):
        Pipeline(tiny_pipeline_config(("vae", "resnet-l1"), image_size=18, scales=[4]))


def test_interpolate_endpoints_match_decode():
    pipe = Pipeline(tiny_pipeline_config()).eval()
    a, b = torch.randn(8), torch.randn(8)
    path = pipe.interpolate(a, b, steps=5)
    assert path.shape == (5, 1, 16, 16)
    assert torch.allclose(path[0], pipe.decode(a[None])[0], atol=1e-5)
    assert torch.allclose(path[-1], pipe.decode(b[None])[0], atol=1e-5)


def test_non_finite_images_are_never_written(tmp_path):
    from stagegen.images import save_grid

    images = torch.rand(2, 1, 8, 8)
    images[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 of 2 images hold NaN or infinite values.*not written"):
        save_grid([images], tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_sample_count_must_be_positive():
    pipe = Pipeline(tiny_pipeline_config()).eval()
    for bad in (0, -1):
        with pytest.raises(ValueError, match="positive integer"):
            pipe.sample(bad)


def _label_conditioned(classes=3):
    config = tiny_pipeline_config().model_dump()
    config["stages"][0]["options"]["classes"] = classes
    return Pipeline(type(tiny_pipeline_config()).model_validate(config), for_training=False).eval()


def test_a_label_conditioned_pipeline_samples_the_label_it_is_asked_for():
    pipe = _label_conditioned()
    assert pipe.label_conditioned and pipe.labels == ("0", "1", "2")
    g = torch.Generator().manual_seed(0)
    z = pipe.prior.sample(4, g)
    # a label: decoded with that label; none: each with a label drawn after the latents, from the same seed
    assert torch.equal(pipe.sample(4, seed=0, label="2"), pipe.decode(z, labels=2))
    drawn = torch.randint(3, (4,), generator=g)
    assert torch.equal(pipe.sample(4, seed=0), pipe.decode(z, labels=drawn))
    assert not torch.equal(pipe.decode(z, labels=0), pipe.decode(z, labels=1))


def test_a_label_conditioned_pipeline_asks_for_labels_and_checks_them():
    pipe = _label_conditioned()
    x = torch.rand(2, 1, 16, 16)
    for call in (lambda: pipe.reconstruct(x), lambda: pipe.encode(x), lambda: pipe.decode(torch.zeros(2, 8))):
        with pytest.raises(ValueError, match="conditioned on class labels \\(a CVAE\\): give each image's label"):
            call()
    assert pipe.reconstruct(x, labels=[0, "2"]).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        pipe.reconstruct(x, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="unknown label 'seven'"):
        pipe.sample(2, label="seven")
    with pytest.raises(ValueError, match="must lie in 0..2"):
        pipe.decode(torch.zeros(2, 8), labels=torch.tensor([0, 3]))
    # an unconditioned pipeline ignores the images' labels (they are facts about the images, not requests)
    plain = Pipeline(tiny_pipeline_config(), for_training=False).eval()
    assert torch.equal(plain.reconstruct(x, labels=[0, 1]), plain.reconstruct(x))


def test_trunk_label_names_must_match_the_trunk(tmp_path):
    pipe = _label_conditioned()
    pipe.set_trunk_labels(["cat", "dog", "owl"])
    loaded = Pipeline.load(pipe.save(tmp_path / "p.safetensors"))
    assert loaded.labels == ("cat", "dog", "owl")
    assert torch.allclose(loaded.sample(2, seed=1, label="owl"), pipe.sample(2, seed=1, label=2), atol=1e-5)  # channels-last
    with pytest.raises(ValueError, match="conditioned on 3 classes, but 2 label names were given"):
        pipe.set_trunk_labels(["cat", "dog"])
    config = tiny_pipeline_config().model_dump()
    config["trunk_labels"] = ["a", "b"]
    with pytest.raises(ValueError, match="its trunk is not conditioned on labels"):
        Pipeline(type(tiny_pipeline_config()).model_validate(config))


def test_a_prior_per_label_must_name_the_trunks_classes():
    from stagegen.priors.per_label import ConditionalPrior

    pipe = _label_conditioned()
    spec = pipe.config.prior
    with pytest.raises(ValueError, match="fitted to the labels a, b, c, and the trunk is conditioned on 0, 1, 2"):
        pipe.set_conditional(ConditionalPrior(["a", "b", "c"], lambda: pipe.make_prior(spec)[0]), spec)
    assert pipe.conditional is None and pipe.config.conditional is None  # a refused prior is not half given
    pipe.set_conditional(ConditionalPrior(["0", "1", "2"], lambda: pipe.make_prior(spec)[0]), spec)
    with pytest.raises(ValueError, match="they must be the same classes in the same order"):
        pipe.set_trunk_labels(["2", "1", "0"])
    assert pipe.labels == ("0", "1", "2")


def test_a_row_label_of_any_length_keeps_the_grid_narrow(tmp_path):
    """A 60,000-character label made a 360,135 px wide PNG."""
    from PIL import Image

    from stagegen.images import save_grid

    path = save_grid([torch.rand(2, 1, 16, 16)] * 2, tmp_path / "g.png", labels=["x" * 60_000, "short"])
    unlabelled = save_grid([torch.rand(2, 1, 16, 16)] * 2, tmp_path / "u.png")
    assert Image.open(path).width - Image.open(unlabelled).width < 300
