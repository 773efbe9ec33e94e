import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stagegen.metrics import frechet_distance, psnr, sharpness_ratio, ssim, swd
from stagegen.metrics.classifiers import MNISTClassifier
from stagegen.metrics.image import PSNR_CAP


def _images(n=64, size=32, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth random blobs plus edges: images with real structure at several scales
    base = torch.rand(n, channels, size // 4, size // 4, generator=g)
    x = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    x = x + 0.3 * (torch.rand(n, channels, size, size, generator=g) > 0.9).float()
    return x.clamp(0, 1)


def _blur(x):
    k = torch.ones(x.shape[1], 1, 3, 3) / 9
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])


def test_identical_images():
    x = _images()
    assert torch.all(psnr(x, x) == PSNR_CAP)
    assert torch.allclose(ssim(x, x), torch.ones(len(x)))
    assert all(v < 1e-6 for v in swd(x, x))
    assert sharpness_ratio(x, x) == pytest.approx(1.0)


def test_psnr_known_value():
    a = torch.zeros(1, 1, 8, 8)
    b = torch.full((1, 1, 8, 8), 0.1)  # mse 0.01 -> 20 dB
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(channels):
    skimage = pytest.importorskip("skimage.metrics")
    a, b = _images(2, 40, channels, 1), _images(2, 40, channels, 2)
    b = 0.5 * a + 0.5 * b
    ours = ssim(a, b)
    for i in range(2):
        ref = skimage.structural_similarity(
            a[i].permute(1, 2, 0).double().numpy(),
            b[i].permute(1, 2, 0).double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=2,
        )
        assert abs(ours[i].item() - ref) < 1e-3


def test_blur_lowers_sharpness_and_raises_swd_and_fid():
    x, other = _images(seed=0), _images(seed=5)
    blurred = _blur(x)
    assert sharpness_ratio(blurred, x) < 0.8
    assert sharpness_ratio(x, other) == pytest.approx(1.0, abs=0.15)
    # the finest pyramid level sees the missing detail most
    d_blur, d_same = swd(blurred, other), swd(x, other)
    assert d_blur[0] > d_same[0]
    torch.manual_seed(0)
    model = MNISTClassifier().eval()  # random weights: still a fixed feature map
    with torch.no_grad():
        fx = model.features(model.prepare(x)).double().numpy()
        fo = model.features(model.prepare(other)).double().numpy()
        fb = model.features(model.prepare(blurred)).double().numpy()
    assert frechet_distance(fx, fx) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(fb, fo) > frechet_distance(fx, fo)


def test_frechet_distance_of_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 4))
    b = a + 2.0  # mean shift of 2 in 4 dims, same covariance: FID = 4 * 4 = 16
    assert frechet_distance(a, b) == pytest.approx(16.0, rel=1e-3)


def test_realism_known_answers_real_half_fake_and_noise():
    from stagegen.metrics.realism import real_baseline, two_sample_test

    real, other_real = _images(n=600, size=16, seed=1), _images(n=600, size=16, seed=2)
    same = two_sample_test(real, other_real, seed=0)
    assert abs(same.accuracy - 0.5) < 0.08 and same.tested == 300  # the same distribution: chance
    assert two_sample_test(real, torch.rand_like(other_real), seed=0).accuracy > 0.97
    # half the set blurred (each blurred image gives itself away, the rest cannot): in between
    half_fake = torch.cat([other_real[:300], _blur(_blur(other_real[300:]))])
    between = two_sample_test(real, half_fake, seed=0)
    assert 0.6 < between.accuracy < 0.85 and 1 <= between.epochs <= 40
    assert abs(real_baseline(torch.cat([real, other_real])).accuracy - 0.5) < 0.08
    # seeded: the same protocol gives the same number
    assert two_sample_test(real, _blur(other_real), seed=3) == two_sample_test(real, _blur(other_real), seed=3)
    with pytest.raises(ValueError, match="one shape"):
        two_sample_test(real, real[:, :, :8, :8])


def test_realism_critic_stops_early_once_validation_stops_improving(monkeypatch):
    from stagegen.metrics import realism

    real = _images(n=200, size=16, seed=1)
    # noise is told apart at once: the loss stops falling long before the epoch cap
    assert realism.two_sample_test(real, torch.rand_like(real), seed=0).epochs < realism.MAX_EPOCHS
    monkeypatch.setattr(realism, "MAX_EPOCHS", 2)
    assert realism.two_sample_test(real, _blur(_blur(real)), seed=0).epochs <= 2


def test_wilson_interval_known_values():
    from stagegen.metrics.realism import wilson_half_width

    assert wilson_half_width(0.5, 100) == pytest.approx(0.0962, abs=1e-4)
    assert wilson_half_width(1.0, 100) == pytest.approx(0.0185, abs=1e-4)  # never zero at a share of 1
    assert wilson_half_width(0.5, 10_000) < wilson_half_width(0.5, 100) / 9


def test_spectrum_distance_known_answers():
    from stagegen.metrics.spectrum import radial_power_spectrum, spectrum_distance

    x, other = _images(n=200, size=16, seed=0), _images(n=200, size=16, seed=5)
    assert spectrum_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    # ten times the power at every frequency (contrast times sqrt(10) about each image's mean): exactly 1
    louder = x.mean(dim=(2, 3), keepdim=True) + (x - x.mean(dim=(2, 3), keepdim=True)) * 10**0.5
    assert spectrum_distance(louder, x) == pytest.approx(1.0, abs=1e-6)
    same, blurred = spectrum_distance(other, x), spectrum_distance(_blur(other), x)
    noisy = spectrum_distance((other + 0.1 * torch.randn_like(other)).clamp(0, 1), x)
    assert same < 0.1 and blurred > 3 * same and noisy > 3 * same
    # noise wins the gradient-energy ratio (it scores above real) but not the spectrum
    assert sharpness_ratio((other + 0.1 * torch.randn_like(other)).clamp(0, 1), x) > 1.2
    # a pure cosine of 3 cycles across the image puts its power in ring 3
    grid = torch.arange(16, dtype=torch.float64)
    wave = (0.5 + 0.5 * torch.cos(2 * torch.pi * 3 * grid / 16)).expand(16, 16).reshape(1, 1, 16, 16)
    power = radial_power_spectrum(wave)
    assert len(power) == 9 and int(power.argmax()) == 3 and power[3] > 100 * power[torch.arange(9) != 3].max()
    with pytest.raises(ValueError, match="one size"):
        spectrum_distance(x, x[:, :, :8, :8])


def test_recognisability_known_answers():
    from stagegen.metrics.classifiers import recognisability

    confident_every_class = torch.eye(10).repeat(10, 1)  # 100 images, 10 of each class, all sure
    assert recognisability(confident_every_class) == pytest.approx((1.0, 1.0))
    unsure = torch.full((100, 10), 0.1)
    unsure[:, 0] = 0.1  # every image a coin toss over the ten classes, all argmax class 0
    assert recognisability(unsure) == pytest.approx((0.0, 0.0))
    half = torch.cat([torch.eye(10).repeat(5, 1), torch.full((50, 10), 0.1)])
    confident, coverage = recognisability(half)
    assert confident == pytest.approx(0.5) and 0.0 < coverage < 1.0


def test_values_print_as_what_they_are_and_directions_beside_them():
    from stagegen.metrics.evaluate import better_text, format_table, format_value

    assert format_value(20000.0) == "20,000" and format_value(12) == "12" and format_value(20.7) == "20.700"
    assert format_value(0.004) == "4.00e-03" and format_value(float("inf")) == "inf" and format_value(1e300) == "1e+300"
    assert better_text("higher") == "higher" and better_text("0.5") == "near 0.5" and better_text(None) == ""
    report = {
        "stages": [{"stage": 0, "type": "vae", "resolution": 16, "recon_psnr": 21.5, "sample_realism": 0.61}],
        "better": {"recon_psnr": "higher", "sample_realism": "0.5"},
    }
    lines = format_table(report).splitlines()
    assert lines[0] == "| stage | type | res | recon_psnr | sample_realism |"
    assert lines[2] == "| better | | | higher | near 0.5 |" and lines[3].startswith("| 0 | vae | 16 | 21.500 | 0.610 |")


BUILT_IN_METRICS = (
    "psnr ssim sharpness swd realism spectrum fid precision_recall tf_fid kid recognisability label_recognisability lpips"
)


def test_every_built_in_metric_says_which_way_is_better_for_each_value_it_writes():
    from stagegen.plugin import get_plugin_manager

    registry = get_plugin_manager().metrics
    for name in BUILT_IN_METRICS.split():
        metric = registry.get(name)
        assert metric.better, f"{name} says nothing of which way is better"
        assert all(way in ("higher", "lower") or float(way) >= 0 for way in metric.better.values())


def test_realism_and_spectrum_as_evaluate_wires_them_into_a_ladder():
    from stagegen.data.real import real_images
    from stagegen.images import resize
    from stagegen.metrics import evaluate
    from stagegen.metrics.realism import two_sample_test
    from stagegen.metrics.spectrum import spectrum_distance
    from stagegen.pipeline import Pipeline

    from ..conftest import tiny_pipeline_config

    torch.manual_seed(0)
    pipe = Pipeline(tiny_pipeline_config(("vae", "resnet-l1"), image_size=16, scales=[2])).eval()  # 8 px, then 16
    real = real_images("digits", None, "train", 16, 1, 400)
    report = evaluate(pipe, real, ("realism", "spectrum"), n_samples=400, seed=0)
    coarse, fine = report["stages"]
    # the untrained chain's samples are told apart from digits; two halves of the digits are not
    assert coarse["sample_realism"] > 0.9 and fine["sample_realism"] > 0.9
    assert abs(report["real_realism"] - 0.5) < 0.15 and 0 < report["real_realism_ci95"] < 0.15
    assert "sample_realism_own" in coarse and "sample_realism_own" not in fine  # the 8 px stage, judged at 8 px too
    # the columns are the inner functions' values on the same samples, at the stated resolutions
    samples = pipe.sample(400, seed=0, return_stages=True)
    own = two_sample_test(resize(real, 8).clamp(0, 1), samples[0].clamp(0, 1), seed=0)
    assert coarse["sample_realism_own"] == pytest.approx(own.accuracy)
    assert fine["sample_spectrum"] == pytest.approx(spectrum_distance(samples[1], real), rel=1e-4)
    assert "realism_protocol" in report and report["better"]["sample_spectrum"] == "lower"
