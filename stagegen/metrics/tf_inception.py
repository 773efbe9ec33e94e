"""Paper-comparable FID and KID: the TF-FID Inception network through torch-fidelity.

Published VAE and GAN figures (FID of the Two-Stage VAE, Ghosh et al.'s RAE, most GAN papers)
use the Inception-v3 graph of TensorFlow's 2015-12-05 release, as pytorch-fid and
torch-fidelity load it (``pt_inception-2015-12-05``). torch-fidelity ships the network with its
TensorFlow-compatible resizing; stagegen gives it the weights file the user has and fixes the
protocol (:data:`PROTOCOL`), which ``eval`` prints with the numbers.

The weights file is read into memory once, checked to hold nothing but tensors (a safe,
``weights_only`` unpickle), and that same buffer is what torch-fidelity then loads: no code
from the file runs, whatever torch-fidelity's own loader would allow.

The real images' features are cached on disk per dataset (keyed by a hash of the exact 8-bit
images and of the weights), so a second ``eval`` of the same data pays only for the samples.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from ..weights import MissingWeightsError, read_state_bytes

__all__ = ["PROTOCOL", "TF_INCEPTION_FILE", "TFInceptionFeatures", "default_weights_path", "kid", "to_uint8_rgb"]

#: the file torch-fidelity downloads (its v0.2.0 release asset), found where torch.hub keeps it
TF_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
TF_INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + TF_INCEPTION_FILE
#: the file is 91 MB
MAX_TF_WEIGHTS_BYTES = 256 * 2**20
FEATURE = "2048"  # the pool3 layer FID and KID are defined on
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # or the smaller set's size, when fewer images are evaluated (said in the protocol)

#: printed under the table; the numbers of samples and real images, and the split, are printed beside it
PROTOCOL = (
    "torch-fidelity's Inception-v3 with the TensorFlow 2015-12-05 weights ({weights}), pool3 features (2048-d); "
    "images as 8-bit RGB (grey replicated) at each stage's resolution, resized to 299x299 inside the network with "
    f"TensorFlow-1 bilinear resizing, against the real images at the pipeline's resolution; KID: cubic polynomial "
    f"kernel, {KID_SUBSETS} subsets of {KID_SUBSET_SIZE} (or of the smaller set's size)"
)


def default_weights_path() -> Path:
    """Where torch-fidelity's own download puts the file (torch.hub's checkpoint folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TF_INCEPTION_FILE


def missing_tf_weights(path: Path) -> MissingWeightsError:
    return MissingWeightsError(
        f"TF-FID and KID need the TF-Inception weights, which are not on this machine: expected {path.name} in "
        f"{path.parent} (download {TF_INCEPTION_URL} there), or give --tf-inception-weights PATH"
    )


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] as the 8-bit RGB the protocol measures (what a saved PNG holds)."""
    x = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class TFInceptionFeatures:
    """Images in [0, 1] -> the TF-FID network's pool3 features (float64 rows)."""

    name = "tf-inception"

    def __init__(self, weights_path: str | Path | None = None, device: str | torch.device = "cpu", batch: int = 32):
        path = Path(weights_path) if weights_path else default_weights_path()
        if weights_path is None and not path.exists():
            raise missing_tf_weights(path)
        # checked to hold tensors only, and bounded, before torch-fidelity unpickles the same bytes
        _, data = read_state_bytes(path, "the TF-Inception weights", MAX_TF_WEIGHTS_BYTES)
        from ..optional import require

        extractor = require("torch_fidelity.feature_extractor_inceptionv3", "TF-FID and KID")
        try:
            self.model = extractor.FeatureExtractorInceptionV3(
                "inception-v3-compat", [FEATURE], feature_extractor_weights_path=io.BytesIO(data)
            )
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:  # another network's: missing keys, wrong shapes
            detail = " ".join(str(exc).split())[:200]
            raise MissingWeightsError(f"{path} does not hold the TF-Inception network's weights ({detail})") from None
        self.model.to(device)
        self.device = torch.device(device)
        self.weights_sha256 = hashlib.sha256(data).hexdigest()
        self.path = path
        self.batch = batch

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        rows = [
            self.model(to_uint8_rgb(images[i : i + self.batch]).to(self.device))[0].cpu()
            for i in range(0, len(images), self.batch)
        ]
        return torch.cat(rows).double().numpy()

    def reference(self, real: torch.Tensor, cache_dir: Path | None) -> np.ndarray:
        """The real images' features, from the cache when these exact images were measured before."""
        pixels = to_uint8_rgb(real)
        key = hashlib.sha256(pixels.numpy().tobytes() + self.weights_sha256.encode()).hexdigest()[:24]
        path = cache_dir / f"tf-inception-{key}.safetensors" if cache_dir is not None else None
        if path is not None and path.is_file():
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                return load_file(str(path))["features"].double().numpy()
            except (SafetensorError, KeyError, OSError):
                pass  # a torn or foreign cache file is recomputed and replaced
        features = self(real)
        if path is not None:
            from safetensors.torch import save_file

            from ..files import atomic_write

            try:
                atomic_write(path, lambda tmp: save_file({"features": torch.from_numpy(features).float()}, tmp))
            except OSError:
                pass  # a read-only or full cache costs the next eval a recomputation, nothing more
        return features


def kid(generated: np.ndarray, real: np.ndarray, seed: int = 0) -> tuple[float, float, int]:
    """KID's mean and standard deviation over subsets (torch-fidelity's estimator), and the subset size."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(KID_SUBSET_SIZE, len(generated), len(real))
    out = kid_features_to_metric(
        torch.from_numpy(generated),
        torch.from_numpy(real),
        kid_subsets=KID_SUBSETS,
        kid_subset_size=size,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD], size
