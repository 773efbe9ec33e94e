import json
import types

import pytest
import torch

import stagegen
from stagegen.config import validate_run_config
from stagegen.plugin import get_plugin_manager
from stagegen.stages import Refiner, StageOptions, StageType
from stagegen.train import Trainer, TrainingStopped, resume, train

from ..conftest import tiny_run_config


def _params(pipeline):
    return {k: v.clone() for k, v in pipeline.state_dict().items()}


def test_loss_falls_and_run_directory_is_complete(tmp_path):
    config = tiny_run_config(steps=60, log_every=10, sample_every=30, checkpoint_every=30)
    result = train(config, tmp_path / "run")
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in lines] == [1, 10, 20, 30, 40, 50, 60]  # the first step too, for an early look
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert {"stage0/l2", "stage0/kl", "stage1/l1", "images_per_second"} <= set(lines[0])
    for name in (
        "pipeline.safetensors",
        "samples.png",
        "reconstructions.png",
        "config.json",
        "checkpoints/last.pt",
        "samples/step_0000030.png",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    assert result.steps == 60
    pipe = stagegen.load(result.pipeline_path)
    assert pipe.sample(2, seed=0).shape == (2, 1, 16, 16)


def test_seeded_cpu_runs_are_bit_identical(tmp_path):
    a = Trainer(tiny_run_config(steps=5), tmp_path / "a")
    a.fit()
    b = Trainer(tiny_run_config(steps=5), tmp_path / "b")
    b.fit()
    for k, v in a.pipeline.state_dict().items():
        assert torch.equal(v, b.pipeline.state_dict()[k]), k


@pytest.mark.parametrize("stages", [("vae", "resnet-l1"), ("vae", "adversarial")])
def test_exact_resume(tmp_path, stages):
    # batch 8 over ~1.6k images; 7 steps with accumulation 2 and cosine schedule; EMA on
    extra = dict(accumulate=2, lr_schedule="cosine", warmup_steps=2, ema_decay=0.9)
    whole = Trainer(tiny_run_config(stages, steps=7, **extra), tmp_path / "whole")
    whole.fit()
    part = Trainer(tiny_run_config(stages, steps=7, **extra), tmp_path / "part")
    assert part.fit(stop_after=3).steps == 3
    assert not (tmp_path / "part" / "pipeline.safetensors").exists()
    result = resume(tmp_path / "part")
    assert result.steps == 7
    resumed = Trainer(tiny_run_config(stages, steps=7, **extra), tmp_path / "part", resume=True)
    assert resumed.step == 7
    for k, v in whole.pipeline.state_dict().items():
        assert torch.allclose(v.float(), resumed.pipeline.state_dict()[k].float(), atol=1e-6), k
    for k, v in whole.ema.state_dict().items():
        assert torch.allclose(v.float(), resumed.ema.state_dict()[k].float(), atol=1e-6), k
    for i, aux in whole.auxiliaries.items():
        for k, v in aux.state_dict().items():
            assert torch.allclose(v.float(), resumed.auxiliaries[i].state_dict()[k].float(), atol=1e-6), k


def test_ema_weights_differ_and_are_what_the_file_holds(tmp_path):
    trainer = Trainer(tiny_run_config(steps=8, ema_decay=0.9), tmp_path / "run")
    result = trainer.fit()
    raw, ema = trainer.pipeline.state_dict(), trainer.ema.state_dict()
    differs = [k for k in raw if raw[k].is_floating_point() and not torch.allclose(raw[k], ema[k])]
    assert differs
    loaded = stagegen.load(result.pipeline_path).state_dict()
    for k in raw:
        assert torch.equal(loaded[k], ema[k].cpu()), k


class _NaNOptions(StageOptions):
    bad_from: int = 0


class _NaNRefiner(Refiner):
    def __init__(self, options):
        super().__init__()
        self.options = options
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, image):
        return torch.tanh(self.conv(image))

    def loss(self, output, target, ctx):
        value = (output - target).abs().mean()
        if ctx.step >= self.options.bad_from:
            value = value * float("nan")
        return {"broken": value}


def _register_nan_plugin():
    module = types.ModuleType("nan_plugin")

    @stagegen.hookimpl
    def register_stages(register):
        register(StageType(name="nan-refiner", kind="refiner", options=_NaNOptions, build=lambda o, ctx: _NaNRefiner(o)))

    module.register_stages = register_stages
    get_plugin_manager().register(module)


def test_nan_guard_skips_counts_and_stops(tmp_path):
    _register_nan_plugin()
    config = tiny_run_config(("vae", "nan-refiner"), steps=50, max_nonfinite=4, checkpoint_every=2)
    config.pipeline.stages[1].options = {"bad_from": 2}
    trainer = Trainer(config, tmp_path / "run")
    with pytest.raises(TrainingStopped, match=r"4 steps in a row .*stage1/broken.*last checkpoint .* is intact"):
        trainer.fit()
    assert trainer.step == 2 and trainer.nonfinite_total == 4
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    nonfinite = [e for e in events if e.get("event") == "nonfinite"]
    assert len(nonfinite) == 4 and nonfinite[0]["terms"] == ["stage1/broken"]
    # the checkpoint holds the last good step and only finite weights
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["pipeline"].values() if v.is_floating_point())


def test_tensorboard_scalars_and_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # in the test extra

    train(tiny_run_config(steps=4, log_every=2, sample_every=2), tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"loss", "stage0/kl", "stage1/l1"} <= set(events.Tags()["scalars"])
    assert "samples" in events.Tags()["images"]


def test_a_failing_tensorboard_writer_is_reported_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    from torch.utils.tensorboard import SummaryWriter

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", full_disk)
    result = train(tiny_run_config(steps=4, log_every=1), tmp_path / "run")
    said = capsys.readouterr().err
    assert said.count("TensorBoard logging is off") == 1 and "No space left on device" in said
    assert result.steps == 4 and result.pipeline_path.is_file()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum('"loss"' in line for line in lines) == 4  # metrics.jsonl kept every step


def test_prior_is_fitted_at_the_end_into_the_file_with_ema(tmp_path):
    config = tiny_run_config(steps=4, ema_decay=0.9).model_dump()
    config["pipeline"]["prior"] = {"type": "latent-vae", "options": {"width": 16, "steps": 20}}
    trainer = Trainer(validate_run_config(config), tmp_path / "run")
    prior_params = {id(p) for p in trainer.pipeline.prior.parameters()}
    assert prior_params and not any(
        id(p) in prior_params for o in trainer.optimizers for g in o.param_groups for p in g["params"]
    )
    result = trainer.fit()
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "prior_fit" and events[-1]["prior_fit_images"] == len(trainer.dataset)
    pipe = stagegen.load(result.pipeline_path, channels_last=False)
    assert pipe.prior.fitted and pipe.config.prior.type == "latent-vae"
    assert torch.equal(pipe.prior.decoder[0].weight, trainer.ema.state_dict()["prior.decoder.0.weight"])


def test_time_budget_finishes_the_run_early_and_completely(tmp_path):
    config = tiny_run_config(steps=100_000, time_budget=1.0, log_every=1000)
    result = train(config, tmp_path / "run")
    assert result.stopped_by_budget and 0 < result.steps < 100_000
    assert result.pipeline_path.is_file() and (tmp_path / "run" / "samples.png").is_file()
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == result.steps


def test_a_run_from_before_priors_existed_resumes(tmp_path):
    trainer = Trainer(tiny_run_config(steps=4), tmp_path / "run")
    trainer.fit(stop_after=2)
    # what a checkpoint and config.json of an older stagegen hold: no prior in the pipeline config
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    old = json.loads(state["pipeline_config"])
    old.pop("prior")
    state["pipeline_config"] = json.dumps(old, sort_keys=True)
    torch.save(state, tmp_path / "run" / "checkpoints" / "last.pt")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["pipeline"].pop("prior")
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    result = resume(tmp_path / "run")
    assert result.steps == 4 and stagegen.load(result.pipeline_path).config.prior.type == "normal"


def _sample_path_config(steps):
    """A refiner judged on prior samples: the sample path's prior is fitted during the run."""
    config = tiny_run_config(("vae", "resnet-l1"), steps=steps, sample_prior_latents=64, sample_prior_refit_every=3)
    stage = config.pipeline.stages[1]
    stage.losses = [
        {"type": "l1"},
        {"type": "adversarial", "weight": 0.1, "options": {"disc_width": 8, "disc_layers": 2, "r1_every": 2}},
    ]
    config.pipeline.prior = {"type": "gmm", "options": {"components": 2}}
    return type(config).model_validate(config.model_dump())


def test_exact_resume_with_the_sample_path_and_its_prior(tmp_path):
    whole = Trainer(_sample_path_config(14), tmp_path / "whole")
    whole.fit()
    assert whole.state.sample_prior.fits >= 2  # first fit at step 8 (64 latents), refits every 3 steps
    fits = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in fits if r.get("event") == "sample_prior_fit"][:2] == [8, 9]
    part = Trainer(_sample_path_config(14), tmp_path / "part")
    part.fit(stop_after=10)
    resume(tmp_path / "part")
    resumed = Trainer(_sample_path_config(14), tmp_path / "part", resume=True)
    # the pipeline files (the run's prior fitted at the end) and the final checkpoints agree
    a, b = (stagegen.load(tmp_path / run / "pipeline.safetensors").state_dict() for run in ("whole", "part"))
    for k, v in a.items():
        assert torch.allclose(v.float(), b[k].float(), atol=1e-6), k
    for k, v in whole.state.sample_prior.prior.state_dict().items():
        assert torch.allclose(v, resumed.state.sample_prior.prior.state_dict()[k], atol=1e-6), k


def test_a_refiner_that_joins_late_is_left_out_until_its_step(tmp_path):
    config = tiny_run_config(("vae", "adversarial"), steps=6)
    config.pipeline.stages[1].train_from = 3
    trainer = Trainer(type(config).model_validate(config.model_dump()), tmp_path / "run")
    assert [trainer.pipeline.active_stages(s) for s in (0, 2, 3)] == [1, 1, 2]
    refiner = {k: v.clone() for k, v in trainer.pipeline.stages[1].state_dict().items()}
    disc = {k: v.clone() for k, v in trainer.auxiliaries["1/adversarial"].state_dict().items()}
    batches = trainer.batches()
    for _ in range(3):
        outcome = trainer.train_step(batches)
        assert not [k for k in outcome.terms if k.startswith("stage1/")]
    assert all(torch.equal(v, refiner[k]) for k, v in trainer.pipeline.stages[1].state_dict().items())
    assert all(torch.equal(v, disc[k]) for k, v in trainer.auxiliaries["1/adversarial"].state_dict().items())
    outcome = trainer.train_step(batches)
    assert {"stage1/l1", "stage1/adversarial", "stage1/aux/d_loss"} <= set(outcome.terms)
    assert any(not torch.equal(v, refiner[k]) for k, v in trainer.pipeline.stages[1].state_dict().items())


def test_a_prior_that_cannot_be_built_on_the_meta_device_still_trains(tmp_path, plugin_manager):
    """The trainer checks memory on the meta device first; a plugin whose constructor computes
    with tensors fails there, and training falls back to the check after building (as loading)."""
    from stagegen.priors import PriorOptions, PriorType
    from stagegen_priors.normal import NormalPrior

    class CountingPrior(NormalPrior):
        def __init__(self, latent_shape):
            super().__init__(latent_shape)
            self.size = int(torch.tensor(latent_shape).prod())  # no value on the meta device

    module = types.ModuleType("counting_prior")
    module.register_priors = stagegen.hookimpl(
        lambda register: register(
            PriorType(name="counting", options=PriorOptions, build=lambda o, ctx: CountingPrior(ctx.latent_shape))
        )
    )
    module.register_priors.__name__ = "register_priors"
    plugin_manager.register(module)
    config = tiny_run_config(steps=2)
    config.pipeline.prior = {"type": "counting"}
    result = train(type(config).model_validate(config.model_dump()), tmp_path / "run")
    assert result.steps == 2 and result.pipeline_path.is_file()


def _cvae_config(classes=10, **train):
    raw = tiny_run_config(**train).model_dump()
    raw["pipeline"]["stages"][0]["options"]["classes"] = classes
    return type(tiny_run_config()).model_validate(raw)


def test_a_label_conditioned_trunk_trains_on_the_images_labels(tmp_path):
    trainer = Trainer(_cvae_config(steps=4, sample_every=4), tmp_path / "run")
    seen = []
    forward = trainer.pipeline.forward
    trainer.model = lambda x, **kw: (seen.append(kw.get("labels")), forward(x, **kw))[1]
    trainer.fit()
    assert len(seen) == 4 and all(y is not None and y.shape == (8,) for y in seen)
    # each step's labels are its images' own: the sampler's indices pick both
    trainer.sampler.set_position(0, 0)
    order = list(iter(trainer.sampler))[:32]
    assert torch.equal(torch.cat(seen), trainer.labels.index[order])
    names = [str(d) for d in range(10)]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["pipeline"]["trunk_labels"] == names
    pipe = stagegen.load(tmp_path / "run" / "pipeline.safetensors")
    assert pipe.label_conditioned and pipe.labels == tuple(names)
    assert (tmp_path / "run" / "samples" / "recon_0000004.png").is_file()


def test_a_label_conditioned_trunk_needs_a_dataset_with_as_many_classes(tmp_path):
    from stagegen.data.tensors import TensorImages

    unlabelled = TensorImages(torch.zeros(16, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="conditioned on 10 classes \\(a CVAE\\), but the digits dataset declares no labels"):
        Trainer(_cvae_config(), tmp_path / "a", dataset=unlabelled)
    with pytest.raises(
        ValueError, match="conditioned on 4 classes, but the digits dataset has 10 .*set the trunk's classes to 10"
    ):
        Trainer(_cvae_config(classes=4), tmp_path / "b")


def test_a_label_conditioned_run_resumes_exactly(tmp_path):
    whole = Trainer(_cvae_config(steps=6), tmp_path / "whole")
    whole.fit()
    Trainer(_cvae_config(steps=6), tmp_path / "part").fit(stop_after=3)
    assert resume(tmp_path / "part").steps == 6
    resumed = Trainer(_cvae_config(steps=6), tmp_path / "part", resume=True)
    assert resumed.pipeline.labels == whole.pipeline.labels == tuple("0123456789")
    for k, v in whole.pipeline.state_dict().items():
        assert torch.allclose(v.float(), resumed.pipeline.state_dict()[k].float(), atol=1e-6), k
