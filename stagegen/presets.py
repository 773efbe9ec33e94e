"""Named starting points for a run, and how a run's configuration is put together.

A preset is a partial run configuration. The paper's three models on its two datasets are
presets (settings from the paper, section 3.1, and the authors' code), so are the default
run on the embedded digits and configurations beyond the paper. Anything a preset sets can
be overridden: by a config file, by ``--stages``, by ``-O key=value``, by explicit flags.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .config import RunConfig, deep_merge, read_config_file, validate_run_config

DEFAULT_PRESET = "sharp-digits"

# --- the paper's architectures (section 3.1; widths, BN and lrelu 0.3 from the authors' code)
_MNIST_TRUNK = {"widths": [64, 128, 256], "convs_per_block": 1, "latent_dim": 128}
_CELEBA_TRUNK = {"widths": [64, 128, 256, 512], "convs_per_block": 2, "latent_dim": 512}
_PAPER_REFINER = {"width": 64, "blocks": 5, "head_width": 256}
_MNIST = {"image_size": 28, "channels": 1}
_CELEBA = {"image_size": 128, "channels": 3}
_MNIST_TRAIN = {"batch_size": 256, "lr": 1e-3, "steps": 100_000}
_CELEBA_TRAIN = {"batch_size": 32, "lr": 2e-4, "steps": 200_000}
_NO_TRUNK_LOSS = {"recon_loss": "none"}

# --- beyond the paper: what makes samples people accept (docs/results.md has the measurements)
# A calibrated Gaussian decoder (sigma^2 = the batch MSE; the sigma-VAE of Rybkin et al. 2021) with the
# KL summed per image needs no hand-tuned KL weight and keeps the posterior informative; a Gaussian
# mixture fitted to the training posteriors after training (Ghosh et al. 2020) samples where the
# decoder has learned to draw, instead of from N(0, I), which such a posterior does not match.
_CALIBRATED = {"recon_loss": "calibrated", "sigma_mode": "optimal", "kl_reduction": "elbo"}


def _sharp(image: dict, trunk: dict, refiner: dict, prior: dict, train: dict, data: str) -> dict[str, Any]:
    return {
        "pipeline": {
            **image,
            "stages": [{"type": "vae", "options": {**trunk, **_CALIBRATED}}, {"type": "resnet-l1", "options": refiner}],
            "prior": prior,
        },
        "train": train,
        "data": {"name": data},
    }


def _paper(image: dict, trunk: dict, train: dict, data: str, model: str) -> dict[str, Any]:
    stages = {
        "vae": [{"type": "vae", "options": trunk}],
        "resvae": [{"type": "vae", "options": {**trunk, **_NO_TRUNK_LOSS}}, {"type": "resnet-l2", "options": _PAPER_REFINER}],
        "msvae": [{"type": "vae", "options": trunk}, {"type": "resnet-l1", "options": _PAPER_REFINER}],
    }[model]
    return {"pipeline": {**image, "stages": stages}, "train": train, "data": {"name": data}}


PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "sharp-digits": (
        "the default: calibrated VAE trunk + l1 refiner + fitted mixture prior on the embedded 16x16 digits; "
        "1,500 steps, 2 to 3 minutes on an idle 2-core CPU (capped at 10 minutes)",
        _sharp(
            {"image_size": 16, "channels": 1},
            {"widths": [32, 64, 128], "latent_dim": 32},
            {"width": 32, "blocks": 3, "head_width": 64},
            {"type": "gmm", "options": {"components": 10}},
            {"steps": 1500, "batch_size": 64, "lr": 1e-3, "sample_every": 500, "checkpoint_every": 500, "time_budget": 600},
            "digits",
        ),
    ),
    "sharp-mnist": (
        "calibrated VAE trunk + l1 refiner + 20-component fitted mixture prior on MNIST 28x28 (widths below the paper's)",
        _sharp(
            {"image_size": 28, "channels": 1},
            {"widths": [32, 64, 128], "latent_dim": 32},
            {"width": 32, "blocks": 3, "head_width": 64},
            {"type": "gmm", "options": {"components": 20}},
            {"steps": 6000, "batch_size": 64, "lr": 1e-3},
            "mnist",
        ),
    ),
    "sharp-celeba64": (
        "calibrated VAE trunk + l1 refiner + 20-component fitted mixture prior on CelebA 64x64 RGB",
        _sharp(
            {"image_size": 64, "channels": 3},
            {"widths": [32, 64, 128, 256], "latent_dim": 128},
            {"width": 32, "blocks": 2, "head_width": 32},
            {"type": "gmm", "options": {"components": 20}},
            {"steps": 6000, "batch_size": 32, "lr": 5e-4},
            "celeba",
        ),
    ),
    "msvae-digits": (
        "the paper's two-stage model (vae,resnet-l1) with the authors' loss settings, scaled to the embedded 16x16 digits",
        {
            "pipeline": {
                "image_size": 16,
                "channels": 1,
                "stages": [
                    {"type": "vae", "options": {"widths": [32, 64, 128], "latent_dim": 32}},
                    {"type": "resnet-l1", "options": {"width": 32, "blocks": 3, "head_width": 64}},
                ],
            },
            "train": {"steps": 1500, "batch_size": 64, "lr": 1e-3, "sample_every": 500, "checkpoint_every": 500},
            "data": {"name": "digits"},
        },
    ),
    "vae-mnist": (
        "the paper's original VAE on MNIST 28x28, the authors' settings (l2 + KL mean, N(0, I) prior)",
        _paper(_MNIST, _MNIST_TRUNK, _MNIST_TRAIN, "mnist", "vae"),
    ),
    "resvae-mnist": (
        "the paper's deep residual VAE on MNIST, the authors' settings: trunk loss off, l2 + KL mean on the refined output",
        _paper(_MNIST, _MNIST_TRUNK, _MNIST_TRAIN, "mnist", "resvae"),
    ),
    "msvae-mnist": (
        "the paper's multi-stage VAE on MNIST, the authors' settings: l2 + KL mean on the coarse image, l1 on the refined one",
        _paper(_MNIST, _MNIST_TRUNK, _MNIST_TRAIN, "mnist", "msvae"),
    ),
    "vae-celeba": (
        "the paper's original VAE on CelebA 128x128, the authors' settings",
        _paper(_CELEBA, _CELEBA_TRUNK, _CELEBA_TRAIN, "celeba", "vae"),
    ),
    "resvae-celeba": (
        "the paper's deep residual VAE on CelebA 128x128, the authors' settings",
        _paper(_CELEBA, _CELEBA_TRUNK, _CELEBA_TRAIN, "celeba", "resvae"),
    ),
    "msvae-celeba": (
        "the paper's multi-stage VAE on CelebA 128x128, the authors' settings",
        _paper(_CELEBA, _CELEBA_TRUNK, _CELEBA_TRAIN, "celeba", "msvae"),
    ),
    "ladder-celeba": (
        "beyond the paper: a true coarse-to-fine ladder on CelebA: the trunk works at 32x32, an l1 refiner upsamples to 64, "
        "a perceptual SRResNet to 128, an adversarial refiner sharpens at 128",
        {
            "pipeline": {
                "image_size": 128,
                "channels": 3,
                "stages": [
                    {"type": "vae", "options": {"widths": [64, 128, 256], "convs_per_block": 2, "latent_dim": 256}},
                    {"type": "resnet-l1", "options": {**_PAPER_REFINER, "scale": 2}},
                    {"type": "srresnet-perceptual", "options": {"scale": 2}},
                    {"type": "adversarial", "options": {"scale": 1, "start_step": 20_000}},
                ],
            },
            "train": {"batch_size": 32, "lr": 2e-4, "steps": 200_000, "ema_decay": 0.999},
            "data": {"name": "celeba"},
        },
    ),
}


def _preset_for(data_name: str | None) -> str:
    if not data_name:
        return DEFAULT_PRESET
    from .plugins import get_dataset_type

    return get_dataset_type(data_name).default_preset or DEFAULT_PRESET


def _apply_dataset_defaults(raw: dict[str, Any], data_name: str | None) -> None:
    """The dataset's image size and channels, where the preset was made for another dataset."""
    if not data_name or raw.get("data", {}).get("name") == data_name:
        return
    from .plugins import get_dataset_type

    dataset = get_dataset_type(data_name)
    raw.setdefault("pipeline", {}).update(image_size=dataset.image_size, channels=dataset.channels)


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str) -> dict[str, Any]:
    """A deep copy of the preset's raw (partial) run configuration."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)} (list them with `stagegen presets`)")
    return copy.deepcopy(PRESETS[name][1])


def parse_value(text: str) -> Any:
    """-O values: JSON where it parses (numbers, true/false, null, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


_SPEC_FIELDS = {"loss_weight", "detach_input", "type"}


def set_option(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``KEY=VALUE``: ``train.lr=1e-4``, ``data.options.split_seed=2``,
    ``pipeline.image_size=32``, a prior's option ``prior.components=20``, or a stage's option
    by index or type name: ``1.blocks=3``, ``resnet-l1.width=32``, ``vae.latent_dim=64``,
    ``1.detach_input=true``."""
    key, sep, text = assignment.partition("=")
    if not sep or "." not in key:
        raise ValueError(
            f"option {assignment!r} must look like STAGE.OPTION=VALUE or train.FIELD=VALUE (e.g. resnet-l1.blocks=3)"
        )
    head, path = key.split(".", 1)
    value = parse_value(text)
    if head == "prior":  # prior.type=gmm, prior.components=20
        prior = raw.setdefault("pipeline", {}).setdefault("prior", {})
        if path == "type":
            prior["type"] = value
        else:
            prior.setdefault("options", {})[path] = value
        return
    if head in ("train", "data", "pipeline"):
        parts = path.split(".")
        if head == "pipeline" and parts[0] in ("stages", "prior") and len(parts) > 1:
            raise ValueError(
                f"option {assignment!r}: set a stage's fields as STAGE.FIELD=VALUE (0.latent_dim=64, "
                "1.type=resnet-l2, resnet-l1.blocks=3) and the prior's as prior.FIELD=VALUE"
            )
        target = raw.setdefault(head, {})
        for depth, p in enumerate(parts[:-1]):
            target = target.setdefault(p, {})
            if not isinstance(target, dict):
                where = ".".join([head, *parts[: depth + 1]])
                raise ValueError(
                    f"option {assignment!r}: {where} is a single value, not a section with fields; set it as {where}=VALUE"
                )
        target[parts[-1]] = value
        return
    stages = raw.get("pipeline", {}).get("stages", [])
    if head.isdigit():
        index = int(head)
        if index >= len(stages):
            raise ValueError(
                f"option {assignment!r}: there is no stage {index} (the chain has {len(stages)} stages, numbered from 0)"
            )
    else:
        matches = [i for i, s in enumerate(stages) if s.get("type") == head]
        if not matches:
            names = ", ".join(s.get("type", "?") for s in stages)
            raise ValueError(f"option {assignment!r}: no stage named {head!r} in the chain ({names}); use its name or index")
        if len(matches) > 1:
            raise ValueError(
                f"option {assignment!r}: the chain has {len(matches)} {head!r} stages (at indices "
                f"{', '.join(map(str, matches))}); name one by its index, e.g. {matches[-1]}.{path}=..."
            )
        index = matches[0]
    if path in _SPEC_FIELDS:
        stages[index][path] = value
    else:
        stages[index].setdefault("options", {})[path] = value


def replace_stages(raw: dict[str, Any], names: list[str]) -> None:
    """Use these stage types; a stage keeps the preset's options where the preset has the same
    type at that position (or anywhere, for the first of its kind)."""
    old = raw.get("pipeline", {}).get("stages", [])
    new = []
    for i, name in enumerate(names):
        if i < len(old) and old[i].get("type") == name:
            new.append(old[i])
            continue
        same = [s for s in old if s.get("type") == name]
        new.append(copy.deepcopy(same[0]) if same else {"type": name})
    raw.setdefault("pipeline", {})["stages"] = new


def compose_run_config(
    preset_name: str | None = None,
    config_file: str | None = None,
    stages: list[str] | None = None,
    options: list[str] | None = None,
    prior: str | None = None,
    **fields: Any,
) -> RunConfig:
    """Preset, then config file, then stage list, then prior, then ``KEY=VALUE`` options, then
    fields such as ``train__lr=1e-4`` or ``data__root='...'`` (section__field); later wins.

    Without a preset, the dataset chooses the starting point: its own recommended preset
    (``sharp-celeba64`` for celeba), or the default one with the dataset's image size and
    channels, so ``--data celeba`` never trains 16x16 grayscale faces by accident."""
    raw = preset(preset_name or _preset_for(fields.get("data__name")))
    if not preset_name:
        _apply_dataset_defaults(raw, fields.get("data__name"))
    if config_file:
        raw = deep_merge(raw, read_config_file(config_file))
    if stages:
        replace_stages(raw, stages)
    if prior:
        current = raw.setdefault("pipeline", {}).get("prior", {})
        if current.get("type") != prior:
            raw["pipeline"]["prior"] = {"type": prior}
    for assignment in options or []:
        set_option(raw, assignment)
    for key, value in fields.items():
        if value is None:
            continue
        section, _, name = key.partition("__")
        raw.setdefault(section, {})[name] = value
    return validate_run_config(raw)
