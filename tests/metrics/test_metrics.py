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


def test_realism_two_sample_test_separates_blur_and_not_a_second_real_set():
    from stagegen.metrics.realism import two_sample_accuracy

    real, other_real = _images(n=400, size=16, seed=1), _images(n=400, size=16, seed=2)
    assert two_sample_accuracy(real, other_real, seed=0) < 0.65  # the same distribution: chance
    assert two_sample_accuracy(real, _blur(_blur(other_real)), seed=0) > 0.9
    # seeded: the same protocol gives the same number
    assert two_sample_accuracy(real, _blur(other_real), seed=3) == two_sample_accuracy(real, _blur(other_real), seed=3)
    with pytest.raises(ValueError, match="one shape"):
        two_sample_accuracy(real, real[:, :, :8, :8])


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


BUILT_IN_METRICS = "psnr ssim sharpness swd realism fid precision_recall tf_fid kid recognisability label_recognisability lpips"


def test_every_built_in_metric_says_which_way_is_better_for_each_value_it_writes():
    from stagegen.plugins import get_plugin_manager

    registry = get_plugin_manager().metrics
    for name in BUILT_IN_METRICS.split():
        metric = registry.get(name)
        assert metric.better, f"{name} says nothing of which way is better"
        assert all(way in ("higher", "lower") or float(way) >= 0 for way in metric.better.values())
