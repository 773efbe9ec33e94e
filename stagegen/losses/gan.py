"""The pieces of an adversarial loss: GAN objectives, the adaptive weight, the R1 penalty and
feature matching. Images in [-1, 1]; the pieces that are unstable in low precision compute in
float32 whatever autocast says."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["GanLoss", "adaptive_weight", "discriminator_loss", "feature_matching", "generator_loss", "r1_penalty"]

GanLoss = Literal["hinge", "non-saturating"]


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())
    if kind == "non-saturating":
        return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())
    raise ValueError(f"unknown GAN loss {kind!r}: use hinge or non-saturating")


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "non-saturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}: use hinge or non-saturating")


def adaptive_weight(
    reconstruction: torch.Tensor, adversarial: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """Balance the adversarial term against the reconstruction term by their gradient norms
    at the generator's last layer (taming-transformers). Float32: under half precision the
    ratio of two small norms overflows to inf/NaN."""
    rec_grad = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)[0].float()
    adv_grad = torch.autograd.grad(adversarial, last_layer, retain_graph=True)[0].float()
    weight = rec_grad.norm() / (adv_grad.norm() + 1e-4)
    return torch.nan_to_num(weight, nan=0.0, posinf=max_weight).clamp(0.0, max_weight).detach()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al. 2018: the squared norm of the discriminator's gradient at real images,
    per image, averaged (``real`` must require grad). Keeps the discriminator from growing steep
    where the data is, the usual cause of a GAN that oscillates or collapses. Float32."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def feature_matching(fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
    """Larsen et al. 2016 ("a learned similarity metric"): the l1 distance between the
    discriminator's hidden features of output and target, averaged over layers."""
    if not fake_features:
        raise ValueError("feature matching needs at least one hidden layer of the discriminator")
    distances = [F.l1_loss(a.float(), b.float()) for a, b in zip(fake_features, real_features)]
    return torch.stack(distances).mean()
