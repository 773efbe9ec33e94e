import pytest
import torch

from stagegen.pipeline import Pipeline

from .conftest import tiny_pipeline_config


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
    terms = pipe.losses(x * 2 - 1, out)
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
    terms = pipe.losses(x, out)
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
