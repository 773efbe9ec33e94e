"""Paper-comparable FID and KID (the TF-Inception network through torch-fidelity), tested with a
randomly initialised network saved in the format torch-fidelity loads: the plumbing, the cache,
the refusals. Numbers from random weights mean nothing (docs/evaluation.md says so)."""

import json
import math
import pickle

import numpy as np
import pytest
import torch

from stagegen.metrics.fid import frechet_distance, precision_recall
from stagegen.metrics.tf_inception import TF_INCEPTION_FILE, TFInceptionFeatures, kid, to_uint8_rgb
from stagegen.weights import MissingWeightsError

from ..cli.test_commands import SMALL, run


@pytest.fixture(scope="module")
def random_tf_weights(tmp_path_factory):
    """torch-fidelity's Inception-v3 with He-initialised convolutions (so features neither vanish
    nor explode through 90 layers), saved as the state dict its loader expects."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_module

    class Unloaded(tf_module.FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # nothing to load: random weights
            return None

    original = tf_module.load_state_dict_from_url
    tf_module.load_state_dict_from_url = lambda *args, **kwargs: {}  # never the network
    try:
        torch.manual_seed(0)
        network = Unloaded("random", ["2048"])
    finally:
        tf_module.load_state_dict_from_url = original
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("weights") / TF_INCEPTION_FILE
    torch.save(network.state_dict(), path)
    return path


def _digits(n, seed=0):
    from stagegen.data.real import real_images

    return real_images("digits", None, "train", 16, 1, n, seed=seed)


def test_features_tell_digits_from_noise_and_the_real_features_are_cached(random_tf_weights, tmp_path):
    network = TFInceptionFeatures(random_tf_weights)
    a, b = _digits(12, seed=1), _digits(12, seed=2)
    noise = torch.rand(12, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    fa, fb, fn = network(a), network(b), network(noise)
    assert fa.shape == (12, 2048) and np.isfinite(fa).all() and fa.std(0).mean() > 1e-4
    assert frechet_distance(fa, fb) < frechet_distance(fa, fn)
    mean, std, size = kid(fa, fn)
    assert size == 12 and mean > kid(fa, fb)[0] and std >= 0

    cached = network.reference(a, tmp_path)
    files = list(tmp_path.glob("tf-inception-*.safetensors"))
    assert len(files) == 1 and np.allclose(cached, fa, atol=1e-4)
    files[0].write_bytes(b"torn")  # a cache file cut short is recomputed, not trusted
    assert np.allclose(network.reference(a, tmp_path), fa, atol=1e-4)
    network(torch.zeros(1, 1, 16, 16))  # the network works after the cache read
    assert np.allclose(network.reference(a, tmp_path), fa, atol=1e-4)
    assert len(list(tmp_path.glob("tf-inception-*.safetensors"))) == 1
    assert to_uint8_rgb(a).shape == (12, 3, 16, 16) and to_uint8_rgb(a).dtype == torch.uint8


def test_missing_foreign_and_code_carrying_weights_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightsError, match=f"expected {TF_INCEPTION_FILE} in .*torch/hub/checkpoints.*download"):
        TFInceptionFeatures()

    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(MissingWeightsError, match="does not hold the TF-Inception network's weights"):
        TFInceptionFeatures(wrong)

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    hostile = tmp_path / "hostile.pth"
    hostile.write_bytes(pickle.dumps({"weight": Payload()}))
    with pytest.raises(MissingWeightsError, match="not a PyTorch state dict of tensors"):
        TFInceptionFeatures(hostile)
    assert not marker.exists()  # the file's code never ran


def test_precision_and_recall_separate_fidelity_from_diversity():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    assert precision_recall(real, real) == (1.0, 1.0)
    collapsed = rng.normal(size=(400, 8)) * 0.2  # all inside the real manifold, covering little of it
    precision, recall = precision_recall(collapsed, real)
    assert precision > 0.9 and recall < 0.2
    assert precision_recall(real + 10, real) == (0.0, 0.0)


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    run("train", "--steps", "4", "--out", str(out), *SMALL, "-O", "train.report=false")
    return out / "pipeline.safetensors"


def test_eval_reports_tf_fid_and_kid_with_the_protocol(random_tf_weights, tiny_pipeline, tmp_path, classifier_cache):
    env = {"STAGEGEN_CACHE": str(classifier_cache), "TORCH_HOME": str(tmp_path / "torch")}
    metrics = "tf_fid,kid,precision_recall,fid"
    args = ["eval", str(tiny_pipeline), "--metrics", metrics, "--limit", "8", "--json"]
    proc = run(*args, "--tf-inception-weights", str(random_tf_weights), env=env)
    report = json.loads(proc.stdout)
    for stage in report["stages"]:
        # KID is an unbiased estimate, so it may fall below 0; finite, with a spread over its subsets
        assert stage["sample_tf_fid"] >= 0 and math.isfinite(stage["sample_kid"]) and stage["sample_kid_std"] >= 0
        assert 0 <= stage["sample_precision"] <= 1 and 0 <= stage["sample_recall"] <= 1
    protocol = report["tf_fid_protocol"]
    assert "2015-12-05" in protocol and "299x299" in protocol and "8-bit RGB" in protocol and "sha256" in protocol
    assert report["n_samples"] == report["n_real"] == 8 and report["data"] == "digits, test split"
    assert (tiny_pipeline.parent / "eval.json").is_file()  # kept for the run's report

    # without the weights: one line naming the file and where it goes, and the other metrics still run
    proc = run(*args, env=env)
    notes = [line for line in proc.stderr.splitlines() if "TF-FID and KID skipped" in line]
    assert len(notes) == 1 and TF_INCEPTION_FILE in notes[0] and str(tmp_path / "torch") in notes[0]
    report = json.loads(proc.stdout)
    assert "sample_tf_fid" not in report["stages"][0] and "sample_precision" in report["stages"][0]

    # a file the user names must be right: a wrong one is an error, not a skipped metric
    proc = run(*args, "--tf-inception-weights", str(tmp_path / "nothing.pth"), env=env, check=False)
    assert proc.returncode == 1 and "nothing.pth" in proc.stderr
