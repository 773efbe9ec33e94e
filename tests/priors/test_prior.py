"""The prior contract, the built-in priors (normal, gmm, latent-vae) and fitting them."""

import math

import pytest
import torch

import stagegen
from stagegen.config import PipelineConfig
from stagegen.pipeline import Pipeline
from stagegen.plugin import get_plugin_manager
from stagegen.priors import LatentSet, fit_prior

from ..conftest import tiny_pipeline_config


def _with_prior(prior):
    return PipelineConfig.model_validate({**tiny_pipeline_config().model_dump(), "prior": prior})


def _build(name, latent_shape=(2,), **options):
    prior_type = get_plugin_manager().priors.get(name)
    from stagegen.priors import PriorContext

    return prior_type.build(prior_type.validate_options(options), PriorContext(latent_shape))


def _two_clusters(n=4000, seed=0):
    """30% around (-4, 0) with std 0.5, 70% around (3, 2) with a correlated covariance."""
    g = torch.Generator().manual_seed(seed)
    k = (torch.rand(n, generator=g) < 0.7).long()
    eps = torch.randn(n, 2, generator=g)
    a = torch.tensor([-4.0, 0.0]) + 0.5 * eps
    b = torch.tensor([3.0, 2.0]) + eps @ torch.tensor([[1.0, 0.6], [0.0, 0.5]])
    x = torch.where(k[:, None] == 1, b, a)
    return LatentSet(x, torch.full_like(x, 1e-3))


def test_every_builtin_prior_is_registered_with_documented_options():
    priors = get_plugin_manager().priors
    assert {"normal", "gmm", "latent-vae"} <= set(priors.names())
    for name in priors.names():
        for field_name, field in priors.get(name).options.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"


def test_gmm_recovers_a_known_mixture_and_is_deterministic():
    latents = _two_clusters()
    prior = _build("gmm", components=2)
    assert not prior.fitted
    with pytest.raises(ValueError, match="never fitted.*fit-prior"):
        prior.sample(3)
    stats = prior.fit(latents, torch.Generator().manual_seed(0))
    assert prior.fitted and stats["prior_em_iterations"] >= 1
    order = prior.means[:, 0].argsort()
    assert torch.allclose(prior.weights[order], torch.tensor([0.3, 0.7]), atol=0.03)
    assert torch.allclose(prior.means[order], torch.tensor([[-4.0, 0.0], [3.0, 2.0]]), atol=0.1)
    cov_b = prior.scale_tril[order[1]] @ prior.scale_tril[order[1]].T
    assert torch.allclose(cov_b, torch.tensor([[1.0, 0.6], [0.6, 0.61]]), atol=0.1)
    again = _build("gmm", components=2)
    again.fit(latents, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(prior.state_dict().values(), again.state_dict().values()))
    samples = prior.sample(20000, torch.Generator().manual_seed(1))
    assert torch.allclose(samples.mean(0), latents.mean.mean(0), atol=0.1)
    assert torch.equal(prior.sample(7, torch.Generator().manual_seed(4)), prior.sample(7, torch.Generator().manual_seed(4)))


def test_gmm_diagonal_and_temperature():
    latents = _two_clusters()
    prior = _build("gmm", components=2, covariance="diag")
    prior.fit(latents, torch.Generator().manual_seed(0))
    assert prior.stds.shape == (2, 2) and (prior.stds > 0).all()
    cold = prior.sample(200, torch.Generator().manual_seed(0), temperature=0.0)
    # at temperature 0 every latent is one of the component means
    assert all(min((z - m).norm() for m in prior.means) < 1e-5 for z in cold)
    wide, narrow = (prior.sample(5000, torch.Generator().manual_seed(0), temperature=t) for t in (1.0, 0.5))
    assert narrow.var(0).sum() < wide.var(0).sum()
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="temperature"):
            prior.sample(2, temperature=bad)


def test_latent_vae_maps_the_normal_onto_shifted_latents():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 2, generator=g) * torch.tensor([0.5, 2.0]) + torch.tensor([3.0, -1.0])
    prior = _build("latent-vae", width=64, steps=1500)
    assert not prior.fitted
    prior.fit(LatentSet(x, torch.full_like(x, 1e-3)), torch.Generator().manual_seed(0))
    assert prior.fitted and not any(p.requires_grad for p in prior.parameters())
    z = prior.sample(4000, torch.Generator().manual_seed(1))
    assert torch.allclose(z.mean(0), torch.tensor([3.0, -1.0]), atol=0.25)
    assert torch.allclose(z.std(0), torch.tensor([0.5, 2.0]), rtol=0.3)


def test_normal_prior_scales_with_temperature():
    prior = _build("normal", latent_shape=(3, 2))
    z = prior.sample(4, torch.Generator().manual_seed(0), temperature=0.5)
    assert z.shape == (4, 3, 2)
    assert torch.allclose(z, 0.5 * torch.randn((4, 6), generator=torch.Generator().manual_seed(0)).view(4, 3, 2))


def test_fitted_prior_is_saved_loaded_and_samples_identically(tmp_path):
    pipe = Pipeline(_with_prior({"type": "gmm", "options": {"components": 3}})).eval()
    images = (torch.rand(64, 1, 16, 16) * 255).to(torch.uint8)
    stats = fit_prior(pipe, images, seed=0)
    assert stats["prior_fit_images"] == 64
    path = pipe.save(tmp_path / "p.safetensors")
    loaded = stagegen.load(path, channels_last=False)
    assert loaded.config.prior.type == "gmm" and loaded.config.prior.options["components"] == 3
    assert torch.equal(pipe.sample(6, seed=2), loaded.sample(6, seed=2))
    assert not torch.equal(loaded.sample(6, seed=2), loaded.sample(6, seed=3))


def test_file_written_before_priors_existed_loads_with_the_normal_prior(tmp_path):
    from ..pipeline.test_file import _edit_document

    pipe = Pipeline(tiny_pipeline_config()).eval()
    path = pipe.save(tmp_path / "old.safetensors")
    _edit_document(path, lambda doc: doc["config"].pop("prior"))
    loaded = stagegen.load(path, channels_last=False)
    assert loaded.config.prior.type == "normal"
    assert torch.equal(pipe.sample(3, seed=0), loaded.sample(3, seed=0))


def test_unknown_prior_is_named():
    with pytest.raises(Exception, match="no prior named 'nope'"):
        Pipeline(_with_prior({"type": "nope"}))
    with pytest.raises(ValueError, match="unknown option 'componentz'"):
        Pipeline(_with_prior({"type": "gmm", "options": {"componentz": 3}}))


def test_interpolate_checks_shapes_and_handles_parallel_ends():
    pipe = Pipeline(tiny_pipeline_config()).eval()
    a = torch.randn(8)
    rows = pipe.interpolate(a, 2 * a, steps=4)  # parallel: slerp undefined, linear instead
    assert rows.shape == (4, 1, 16, 16) and torch.isfinite(rows).all()
    with pytest.raises(ValueError, match="latents of shape"):
        pipe.interpolate(torch.randn(3), torch.randn(3))


# ---------------------------------------------------------------------------- priors that lie or fail


def _invoke(*args):
    from click.testing import CliRunner

    from stagegen.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def _saved(tmp_path, prior=None, **config):
    config = tiny_pipeline_config(**config) if prior is None else _with_prior(prior)
    return Pipeline(config).eval().save(tmp_path / "p.safetensors")


def test_fit_prior_never_replaces_a_working_file_with_a_nan_prior(tmp_path):
    path = _saved(tmp_path)
    before = path.read_bytes()
    result = _invoke("fit-prior", path, "--prior", "latent-vae", "-O", "lr=1e30", "-O", "steps=30", "-O", "width=8", "-o", path)
    assert result.exit_code == 1, result.output
    assert "fitting the latent-vae prior gave an unusable prior: prior." in result.stderr and "NaN" in result.stderr
    assert path.read_bytes() == before and _invoke("sample", path, "-o", tmp_path / "s.png").exit_code == 0


def test_a_failed_prior_fit_at_the_end_of_training_leaves_an_unfitted_prior_and_says_how_to_fit_one(tmp_path):
    from ..train.test_interruption import TINY

    out = tmp_path / "run"
    args = ["train", "--steps", 2, "--out", out, "--no-progress", *TINY, "--prior", "latent-vae"]
    result = _invoke(*args, "-O", "prior.lr=1e30", "-O", "prior.steps=30", "-O", "prior.width=8")
    assert result.exit_code == 1
    assert "gave an unusable prior" in result.stderr and f"stagegen fit-prior {out / 'pipeline.safetensors'}" in result.stderr
    pipe = stagegen.load(out / "pipeline.safetensors")  # loads: no NaN was written
    assert not pipe.prior.fitted
    with pytest.raises(ValueError, match="never fitted: fit it with `stagegen fit-prior"):
        pipe.sample(2)
    assert (out / "checkpoints" / "last.pt").is_file()


def test_a_mixture_with_negative_weights_is_refused_at_load(tmp_path):
    pipe = Pipeline(_with_prior({"type": "gmm", "options": {"components": 2, "covariance": "diag"}})).eval()
    pipe.prior.weights.copy_(torch.tensor([1.5, -0.5]))  # sums to one, finite: only the sign is wrong
    path = pipe.save(tmp_path / "p.safetensors")
    from stagegen.pipeline.file import PipelineFileError

    with pytest.raises(PipelineFileError, match="gmm prior is unusable: prior.weights holds 1 negative"):
        stagegen.load(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reg_covar": 0}, "reg_covar"),  # a singular covariance: _LinAlgError after the whole run
        ({"reg_covar": 0, "components": 1000}, "reg_covar"),
    ],
)
def test_gmm_options_that_cannot_fit_are_refused_before_training(options, message):
    with pytest.raises(ValueError, match=f"invalid options of prior 'gmm': {message}"):
        Pipeline(_with_prior({"type": "gmm", "options": options}))


def test_latent_vae_batch_size_is_bounded():
    with pytest.raises(ValueError, match="batch_size: Input should be less than or equal to 65536"):
        Pipeline(_with_prior({"type": "latent-vae", "options": {"batch_size": 10**9}}))


def test_a_mixture_too_large_for_memory_is_refused_before_allocating(tmp_path):
    """1,000 full-covariance components over 4,096-value latents asked for 67 GB unchecked."""
    config = tiny_pipeline_config()
    config.stages[0].options["latent_dim"] = 4096
    path = Pipeline(config).eval().save(tmp_path / "p.safetensors")
    result = _invoke("fit-prior", path, "-O", "components=1000", "-o", tmp_path / "g.safetensors")
    assert result.exit_code == 1 and "1000 full-covariance components over 4096-value latents" in result.stderr
    assert not (tmp_path / "g.safetensors").exists()


def test_a_fit_too_large_for_memory_is_refused_before_training(tmp_path):
    from stagegen.priors import PriorFitError
    from stagegen.train import Trainer

    from ..conftest import tiny_run_config

    config = tiny_run_config()
    config.pipeline.stages[0].options["latent_dim"] = 2048
    config.pipeline.prior = config.pipeline.prior.model_validate({"type": "gmm", "options": {"components": 1000}})
    config = type(config).model_validate(config.model_dump())
    with pytest.raises(PriorFitError, match=r"fitting the gmm prior to 20,000 latents of 2048 values needs about [\d,.]+ GiB"):
        Trainer(config, tmp_path / "run")  # refused before the pipeline (16 GB of covariances) is built
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_prior_type_as_an_option_starts_from_that_types_defaults():
    """`-O prior.type=latent-vae` on the default preset failed on the preset's gmm options."""
    from stagegen.config.presets import compose_run_config

    config = compose_run_config(options=["prior.steps=50", "prior.type=latent-vae"])
    assert config.pipeline.prior.type == "latent-vae" and config.pipeline.prior.options == {"steps": 50}
    assert compose_run_config(prior="latent-vae").pipeline.prior.options == {}


# ---------------------------------------------------------------------------- fitted, tracked by the base class


def _register_counting_prior():
    """A third-party prior that needs a fit and does not track it itself."""
    import types

    from pydantic import Field

    from stagegen.priors import PriorOptions, PriorType

    class ShiftOptions(PriorOptions):
        scale: float = Field(1.0, gt=0)

    class Shift(stagegen.priors.Prior):
        def __init__(self, options, latent_shape):
            super().__init__(latent_shape)
            self.register_buffer("offset", torch.zeros(self.latent_dim))

        def fit(self, latents, generator):
            self.offset.copy_(latents.mean.mean(0))
            return {}

        def sample_flat(self, n, generator, temperature):
            return self.offset + temperature * torch.randn((n, self.latent_dim), generator=generator)

    module = types.ModuleType("shift_prior")

    @stagegen.hookimpl
    def register_priors(register):
        register(PriorType(name="shift", options=ShiftOptions, build=lambda o, ctx: Shift(o, ctx.latent_shape)))

    module.register_priors = register_priors
    get_plugin_manager().register(module)


def test_a_prior_that_does_not_track_its_fit_is_unfitted_until_it_is_fitted_and_after_loading(tmp_path):
    import stagegen.priors  # noqa: F401  (the package the plugin subclasses from)

    _register_counting_prior()
    pipe = Pipeline(_with_prior({"type": "shift"})).eval()
    assert not pipe.prior.fitted  # placeholder buffers were sampled silently before
    with pytest.raises(ValueError, match="never fitted"):
        pipe.sample(2)
    unfitted = pipe.save(tmp_path / "unfitted.safetensors")
    with pytest.raises(ValueError, match="never fitted"):
        stagegen.load(unfitted).sample(2)
    fit_prior(pipe, torch.rand(20, 1, 16, 16), seed=0)
    assert pipe.prior.fitted and pipe.sample(2).shape == (2, 1, 16, 16)
    loaded = stagegen.load(pipe.save(tmp_path / "fitted.safetensors"))
    assert loaded.prior.fitted and loaded.file_metadata["prior"]["fitted"] is True


def test_each_prior_estimates_its_fit_for_a_time_budget():
    probe = LatentSet(torch.randn(64, 2), torch.ones(64, 2))
    assert _build("normal").fit_seconds(10_000, probe) == 0  # nothing to fit
    latent_vae = _build("latent-vae", steps=40)
    assert latent_vae.fit_seconds(640, probe) > 0 and not latent_vae.fitted  # a copy was timed, not the prior
    # EM is timed per iteration at full size and scaled by the iterations a fit may take
    gmm = _build("gmm", components=3, latent_shape=(16,))
    probe = LatentSet(torch.randn(64, 16), torch.ones(64, 16))
    few, many = _build("gmm", components=3, latent_shape=(16,), iterations=1), gmm
    assert 0 < few.fit_seconds(20_000, probe) < many.fit_seconds(20_000, probe)
    assert not gmm.fitted
