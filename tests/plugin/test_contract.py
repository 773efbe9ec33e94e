"""The plugin contract of docs/plugins.md, section 9: every name it lists exists and is exported,
and a plugin written with those names alone (a self-contained refiner with a scale and an upgrade
hook, a network, a loss, a stage type composed of them, a prior, a metric, a training callback)
registers, trains, saves, loads, samples and is evaluated."""

import ast
import importlib
import re
import sys
import types
from pathlib import Path

import torch

from stagegen.plugin import get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


def _contract() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text[text.index("## 9. What a plugin may use") :]
    table = {}
    for module, names in re.findall(r"^\| `([\w.]+)` \| (.+) \|$", section, flags=re.M):
        table[module] = set(re.findall(r"`(\w+)`", names))
    return table


def test_every_contract_name_exists_and_is_exported():
    table = _contract()
    assert {"stagegen.stages", "stagegen.layers", "stagegen.losses", "stagegen.metrics"} <= set(table)
    for module_name, names in table.items():
        module = importlib.import_module(module_name)
        exported = set(getattr(module, "__all__", names))
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name} is in the contract but does not exist"
            assert name in exported, f"{module_name}.{name} is in the contract but not in its __all__"


PLUGIN = """
import torch
import torch.nn.functional as F
from pydantic import Field

import stagegen
from stagegen.layers import PixelShuffleUpsampler, conv_bn_act
from stagegen.losses import Loss, LossOptions, LossType
from stagegen.losses import pixel_loss
from stagegen.metrics import MetricType
from stagegen.priors import Prior, PriorOptions, PriorType
from stagegen.stages import NetworkType, Refiner, StageOptions, StageType
from stagegen.train import Callback, CallbackType

EVENTS = []


class UpOptions(StageOptions):
    width: int = Field(8, ge=1, le=64, description="channels")
    scale: int = Field(2, ge=1, le=4, description="upsampling factor")


class Up(Refiner):
    def __init__(self, o, channels):
        super().__init__()
        self.body = torch.nn.Sequential(conv_bn_act(channels, o.width), PixelShuffleUpsampler(o.width, o.scale))
        self.out = torch.nn.Conv2d(o.width, channels, 3, padding=1)

    def forward(self, image):
        return torch.tanh(self.out(self.body(image)))

    def loss(self, output, target, ctx):
        return {"l1": pixel_loss("l1", output, target)}


def upgrade(options, tensors, version):
    return options, tensors


class SmoothOptions(StageOptions):
    width: int = Field(8, ge=1, le=64, description="channels")


class Smooth(Refiner):
    def __init__(self, o, channels):
        super().__init__()
        self.body = torch.nn.Sequential(conv_bn_act(channels, o.width), torch.nn.Conv2d(o.width, channels, 3, padding=1))

    def forward(self, image):
        return torch.tanh(image + self.body(image))


class TVOptions(LossOptions):
    power: int = Field(1, ge=1, le=2, description="1: l1 of the differences, 2: l2")


class TotalVariation(Loss):
    def __init__(self, o):
        super().__init__()
        self.power = o.power

    def forward(self, output, target, ctx):
        return (output[..., 1:, :] - output[..., :-1, :]).abs().pow(self.power).mean()


class Events(Callback):
    def on_step_end(self, trainer, outcome):
        EVENTS.append(("step_end", sorted(outcome.losses)))


class ShrunkOptions(PriorOptions):
    factor: float = Field(0.5, gt=0, description="standard deviation of the latents")


class Shrunk(Prior):
    needs_fit = False

    def __init__(self, o, latent_shape):
        super().__init__(latent_shape)
        self.factor = o.factor

    def sample_flat(self, n, generator, temperature):
        return torch.randn((n, self.latent_dim), generator=generator) * self.factor * temperature


@stagegen.hookimpl
def register_networks(register):
    register(NetworkType(name="contract-smooth-net", options=SmoothOptions, build=lambda o, ctx: Smooth(o, ctx.channels),
                         description="a residual smoother"))


@stagegen.hookimpl
def register_losses(register):
    register(LossType(name="contract-tv", options=TVOptions, build=lambda o, ctx: TotalVariation(o), description="vertical TV"))


@stagegen.hookimpl
def register_stages(register):
    register(StageType(name="contract-up", kind="refiner", options=UpOptions, build=lambda o, ctx: Up(o, ctx.channels),
                       scale=lambda o: o.scale, upgrade=upgrade, description="x2 upsampling refiner"))
    register(StageType(name="contract-smooth", kind="refiner", network="contract-smooth-net",
                       losses=({"type": "l1"}, {"type": "contract-tv", "weight": 0.1}), description="smoother with l1 + TV"))


@stagegen.hookimpl
def register_callbacks(register):
    register(CallbackType(name="contract-events", build=lambda config: Events(), description="records steps"))


@stagegen.hookimpl
def register_priors(register):
    register(PriorType(name="contract-shrunk", options=ShrunkOptions, build=lambda o, ctx: Shrunk(o, ctx.latent_shape),
                       description="N(0, factor^2 I)"))


@stagegen.hookimpl
def register_metrics(register):
    register(MetricType(name="contract-mean", needs=("samples",), compute=lambda ctx: {"sample_mean": float(ctx.samples.mean())}))
"""


def _imports_outside_the_contract(source: str, table: dict[str, set[str]]) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stagegen"):
            bad += [f"{node.module}.{a.name}" for a in node.names if a.name not in table.get(node.module, set())]
        elif isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.startswith("stagegen.")]
    return bad


def test_the_contract_checker_catches_an_internal_import():
    assert _imports_outside_the_contract("from stagegen.train.trainer import Trainer", _contract()) == [
        "stagegen.train.trainer.Trainer"
    ]


def test_a_plugin_built_from_the_contract_alone_works_end_to_end(tmp_path):
    import stagegen
    from stagegen.metrics import evaluate
    from stagegen.train import train

    assert _imports_outside_the_contract(PLUGIN, _contract()) == []
    module = types.ModuleType("contract_plugin")
    exec(compile(PLUGIN, "contract_plugin", "exec"), module.__dict__)
    sys.modules["contract_plugin"] = module
    try:
        get_plugin_manager().register(module)
        config = {
            "pipeline": {
                "image_size": 16,
                "channels": 1,
                "prior": {"type": "contract-shrunk"},
                "stages": [
                    {"type": "vae", "options": {"widths": [8], "latent_dim": 4}},
                    {"type": "contract-up", "options": {"width": 8}},
                    {"type": "contract-smooth"},
                ],
            },
            "train": {"steps": 2, "batch_size": 8, "progress": False, "sample_every": 0, "checkpoint_every": 0},
        }
        result = train(config, tmp_path / "run")
        pipe = stagegen.load(result.pipeline_path)
        assert pipe.resolutions == [8, 16, 16]
        stages = pipe.sample(3, seed=0, return_stages=True)
        assert [s.shape[-1] for s in stages] == [8, 16, 16] and all(torch.isfinite(s).all() for s in stages)
        assert [(i, n) for i, n in module.EVENTS[-1][1] if i == 2] == [(2, "contract-tv"), (2, "l1")]
        report = evaluate(pipe, torch.rand(8, 1, 16, 16), ("contract-mean",), n_samples=4)
        assert all(0 <= row["sample_mean"] <= 1 for row in report["stages"])
    finally:
        sys.modules.pop("contract_plugin", None)
