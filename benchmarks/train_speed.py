"""Training throughput, side by side in one run: stagegen's trainer, a plain PyTorch loop of
the same modules and losses (the floor), and pythae's trainer on the VAE-only model.

    python benchmarks/train_speed.py                       # CPU: msvae-mnist and vae-mnist, batch 64
    python benchmarks/train_speed.py --presets sharp-mnist,sharp-celeba64 --batch 32
    python benchmarks/train_speed.py --presets msvae-celeba --image-size 128 --batch 32 --device cuda --precision bf16

The plain loop computes what the preset's stages compute: the trunk's loss (l2 + KL, or the
calibrated Gaussian NLL + KL per image), the refiners' pixel losses and, for an adversarial
loss, the discriminator's judgement of the refiner's outputs on the batch and on latents from
the prior (the sample path, here drawn from N(0, I)), feature matching, and the
discriminator's own update with its R1 penalty. Refiners that join late (``train_from``) are
timed as they train once they have joined.

Each measurement runs in its own process (so its peak memory is its own), on the same
in-memory images, with the same batch, precision and model; warm-up steps are excluded and the
median of several timed repetitions is reported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, images_in_memory, machine, median, peak_memory_mb, run_worker, save_result  # noqa: E402


def _config(args):
    from stagegen.config.presets import compose_run_config

    return compose_run_config(
        args.preset,
        pipeline__image_size=args.image_size,
        train__batch_size=args.batch,
        train__lr=1e-3,
        train__device=args.device,
        train__precision=args.precision,
        train__compile=args.compile,
        train__progress=False,
        train__sample_every=0,
        train__checkpoint_every=0,
        # the sample path draws from N(0, I) in both loops: a fitted prior's refits (every few hundred steps) are not timed
        pipeline__prior={"type": "normal"},
    )


# ------------------------------------------------------------------ the plain loop (the floor)


def _joined(pipeline_config):
    """Every refiner training from the first step (a preset's ``train_from`` would time the
    trunk alone), and losses starting at once (a late ``start_step`` likewise)."""
    stages = []
    for spec in pipeline_config.stages:
        losses = spec.losses
        if losses is not None:
            losses = [
                loss.model_copy(update={"options": {**loss.options, "start_step": 0}}) if "start_step" in loss.options else loss
                for loss in losses
            ]
        stages.append(spec.model_copy(update={"train_from": 0, "losses": losses}))
    return pipeline_config.model_copy(update={"stages": stages})


def plain_loop_step_fn(pipeline, optimizer, bf16: bool, device, memory_format=torch.contiguous_format, compile=False, train=None):
    """What a user would write by hand for the same modules and losses (and the run's EMA and
    sample-path batch, from ``train``, a TrainConfig)."""
    from stagegen.config import TrainConfig
    from stagegen.images import resize
    from stagegen.losses import adaptive_weight, r1_penalty
    from stagegen.optim import adam
    from stagegen.train.ema import warmup_decay

    trunk, refiners = pipeline.stages[0], list(pipeline.stages[1:])
    specs = pipeline.config.stages
    trunk_loss = specs[0].options["recon_loss"]
    kl_mean = specs[0].options["kl_reduction"] == "mean"
    pixels = [[loss.type for loss in spec.losses if loss.type in ("l1", "l2")] for spec in specs[1:]]
    gans = []  # per refiner: (discriminator, its optimiser, options) or None
    for spec in specs[1:]:
        adversarial = next((loss for loss in spec.losses if loss.type == "adversarial"), None)
        if adversarial is None:
            gans.append(None)
            continue
        o = adversarial.options
        disc = _discriminator(pipeline.config.channels, o).to(device).to(memory_format=memory_format)
        o = {**o, "weight": adversarial.weight}
        gans.append((disc, adam(disc.parameters(), lr=o["disc_lr"], betas=tuple(o["disc_betas"])), o))
    sampled = any(g is not None and g[2]["judge"] != "reconstructions" for g in gans)
    latent_shape = tuple(trunk.latent_shape)
    step_count = [0]
    train = train or TrainConfig()
    sample_batch = train.sample_path_batch
    # the EMA a run keeps (with its warm-up, per stage from the step it joins: here every stage trains from the start)
    ema = [p.detach().clone() for p in pipeline.state_dict().values() if p.is_floating_point()] if train.ema_decay else None

    def compute_loss(x, z_prior):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            x0 = resize(x, pipeline.resolutions[0])
            posterior = trunk.encode(x0)
            z = posterior.mean + posterior.std * torch.randn_like(posterior.mean)
            y = trunk.decode(z)
            kl = posterior.kl()
            loss = kl.mean() if kl_mean else kl.sum(1).mean() / (1 if trunk_loss == "l2" else y[0].numel())
            if trunk_loss == "l2":
                loss = loss + F.mse_loss(y.float(), x0)
            elif trunk_loss == "calibrated":
                squared = (y.float() - x0).square()
                log_sigma = (0.5 * squared.mean().clamp_min(1e-12).log()).clamp_min(-6.0)
                loss = loss + (0.5 * squared * torch.exp(-2 * log_sigma) + log_sigma).mean()
            ys = [y]
            samples = None
            if z_prior is not None:
                with torch.no_grad():
                    trunk.eval()
                    samples = trunk.decode(z_prior)
                    trunk.train()
            for i, refiner in enumerate(refiners):
                y = refiner(y)
                ys.append(y)
                target = resize(x, pipeline.resolutions[i + 1])
                pixel = sum(F.l1_loss(y.float(), target) if kind == "l1" else F.mse_loss(y.float(), target) for kind in pixels[i])
                loss = loss + pixel
                if samples is not None:
                    samples = refiner(samples)
                if gans[i] is not None:
                    disc, _, o = gans[i]
                    disc.requires_grad_(False)
                    logits, features = disc.forward_with_features(y)
                    adversarial = -logits.float().mean()
                    if samples is not None:
                        adversarial = 0.5 * (adversarial - disc(samples).float().mean())
                    if o["feature_matching"]:
                        with torch.no_grad():
                            _, real_features = disc.forward_with_features(target)
                        fm = torch.stack([F.l1_loss(a, b) for a, b in zip(features, real_features)]).mean()
                        loss = loss + o["feature_matching"] * fm
                    weight = adaptive_weight(pixel, adversarial, refiner.last_layer) if o["adaptive"] else 1.0
                    loss = loss + o["weight"] * weight * adversarial
        return loss, ys, samples

    if compile:
        compute_loss = torch.compile(compute_loss)

    def step(batch_uint8):
        x = batch_uint8.to(device, non_blocking=True).float().div_(255).mul_(2).sub_(1)
        x = x.contiguous(memory_format=memory_format)
        z_prior = torch.randn(sample_batch or x.shape[0], *latent_shape, device=device) if sampled else None
        optimizer.zero_grad(set_to_none=True)
        loss, ys, samples = compute_loss(x, z_prior)
        loss.backward()
        optimizer.step()
        if ema is not None:
            weights = [p.detach() for p in pipeline.state_dict().values() if p.is_floating_point()]
            torch._foreach_lerp_(ema, weights, 1.0 - warmup_decay(train.ema_decay, step_count[0]))
        for i, gan in enumerate(gans):  # each discriminator's own update
            if gan is None:
                continue
            disc, disc_optimizer, o = gan
            disc.requires_grad_(True)
            disc_optimizer.zero_grad(set_to_none=True)
            penalise = o["r1"] > 0 and step_count[0] % o["r1_every"] == 0
            real = resize(x, pipeline.resolutions[i + 1]).detach().requires_grad_(penalise)
            real_logits = disc(real)
            fakes = [ys[i + 1].detach()] + ([samples.detach()] if samples is not None else [])
            d_loss = sum(F.relu(1 - real_logits).mean() + F.relu(1 + disc(f)).mean() for f in fakes) / len(fakes)
            if penalise:
                d_loss = d_loss + 0.5 * o["r1"] * o["r1_every"] * r1_penalty(real_logits, real)
            d_loss.backward()
            disc_optimizer.step()
        step_count[0] += 1
        return loss

    return step


def _discriminator(channels: int, options: dict):
    from stagegen_losses import PatchDiscriminator

    return PatchDiscriminator(channels, options["disc_width"], options["disc_layers"], options["spectral_norm"])


def worker_plain(args, memory_format=torch.contiguous_format) -> dict:
    from stagegen.devices import resolve_device
    from stagegen.optim import adam
    from stagegen.pipeline import Pipeline

    config = _config(args)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    pipeline = Pipeline(_joined(config.pipeline)).to(device).train().to(memory_format=memory_format)
    optimizer = adam(pipeline.parameters(), lr=1e-3, betas=(0.5, 0.999))
    bf16 = args.precision == "bf16"
    # the images stay where the step runs, as a hand-written loop keeps a dataset that fits there
    images = images_in_memory(config.pipeline.image_size, config.pipeline.channels).to(device)
    step = plain_loop_step_fn(pipeline, optimizer, bf16, device, memory_format, args.compile, config.train)
    order = torch.randperm(images.shape[0], device=device)
    n = images.shape[0] // args.batch

    def batches(k):
        for i in range(k):
            j = i % n
            yield images[order[j * args.batch : (j + 1) * args.batch]]

    for b in batches(args.warmup):
        step(b)
    rates = []
    for _ in range(args.reps):
        with Timer(device) as t:
            for b in batches(args.steps):
                step(b)
        rates.append(args.steps * args.batch / t.seconds)
    return {"images_per_second": median(rates), "peak_mb": peak_memory_mb(device)}


# ------------------------------------------------------------------ stagegen's trainer


def worker_stagegen(args) -> dict:
    from stagegen.data.tensors import TensorImages
    from stagegen.devices import resolve_device
    from stagegen.train import Trainer

    config = _config(args)
    total = args.warmup + args.reps * args.steps
    config = config.model_copy(
        update={
            "pipeline": _joined(config.pipeline),
            "train": config.train.model_copy(update={"steps": total, "log_every": args.steps, "time_budget": None}),
        }
    )
    images = images_in_memory(config.pipeline.image_size, config.pipeline.channels)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, dataset=TensorImages(images))
        # warm-up steps first, outside the timed windows: the first logging window then starts after them
        batches = trainer.batches()
        for _ in range(args.warmup):
            trainer.train_step(batches)  # advances the run's step
        trainer.batches = lambda: batches
        result = trainer.fit()
    rates = [r["images_per_second"] for r in result.losses if r["step"] > args.warmup]
    return {"images_per_second": median(rates), "peak_mb": peak_memory_mb(resolve_device(args.device))}


# ------------------------------------------------------------------ pythae


def worker_pythae(args) -> dict:
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    from stagegen.devices import resolve_device
    from stagegen.pipeline import Pipeline

    config = _config(args)
    if len(config.pipeline.stages) != 1:
        raise SystemExit("pythae is measured on the vae-only model")
    device = resolve_device(args.device)
    torch.manual_seed(0)
    trunk = Pipeline(config.pipeline).stages[0]

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.encoder, self.to_posterior = trunk.encoder, trunk.to_posterior

        def forward(self, x):
            mean, s = self.to_posterior(self.encoder(x).flatten(1)).chunk(2, dim=1)
            return ModelOutput(embedding=mean, log_covariance=s)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.from_latent, self.decoder, self.bottom = trunk.from_latent, trunk.decoder, trunk._bottom

        def forward(self, z):
            return ModelOutput(reconstruction=self.decoder(self.from_latent(z).view(-1, *self.bottom)))

    c, s = config.pipeline.channels, config.pipeline.image_size
    model = VAE(
        VAEConfig(input_dim=(c, s, s), latent_dim=trunk.latent_shape[0], reconstruction_loss="mse"),
        encoder=Encoder(),
        decoder=Decoder(),
    )
    images = images_in_memory(s, c)[: args.steps * args.batch].float().div(255).mul(2).sub(1)
    with tempfile.TemporaryDirectory() as out:
        trainer_config = BaseTrainerConfig(
            output_dir=out,
            num_epochs=1,
            per_device_train_batch_size=args.batch,
            learning_rate=1e-3,
            no_cuda=device.type != "cuda",
            amp=args.precision == "bf16",
            steps_saving=None,
            steps_predict=None,
            optimizer_cls="Adam",
            optimizer_params={"betas": (0.5, 0.999)},
        )
        trainer = BaseTrainer(model, BaseDataset(images, torch.zeros(len(images))), training_config=trainer_config)
        trainer.prepare_training()  # what trainer.train() does first (optimiser, callbacks)
        warm = BaseDataset(images[: args.warmup * args.batch], torch.zeros(args.warmup * args.batch))
        loader, trainer.train_loader = trainer.train_loader, trainer.get_train_dataloader(warm)
        trainer.train_step(0)
        trainer.train_loader = loader
        rates = []
        for epoch in range(args.reps):  # one epoch = args.steps batches
            with Timer(device) as t:
                trainer.train_step(epoch + 1)
            rates.append(args.steps * args.batch / t.seconds)
    return {"images_per_second": median(rates), "peak_mb": peak_memory_mb(device)}


# ------------------------------------------------------------------ machine facts


def flops_per_image(args) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from stagegen.pipeline import Pipeline

    config = _config(args)
    pipeline = Pipeline(config.pipeline).train()
    optimizer = torch.optim.Adam(pipeline.parameters())
    step = plain_loop_step_fn(pipeline, optimizer, False, torch.device("cpu"), train=config.train)
    batch = images_in_memory(config.pipeline.image_size, config.pipeline.channels, 8)
    with FlopCounterMode(display=False) as counter:
        step(batch)
    return counter.get_total_flops() / batch.shape[0]


def conv_peak(device: torch.device, reps: int = 5) -> float:
    """FLOP/s of a large channels-last 3x3 convolution (forward), the best of a few shapes."""
    best = 0.0
    shapes = [(32, 128, 56), (16, 256, 28)] if device.type == "cpu" else [(256, 256, 64), (128, 512, 32)]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for n, c, hw in shapes:
        x = torch.randn(n, c, hw, hw, device=device, dtype=dtype).to(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(device, dtype).to(memory_format=torch.channels_last)
        flops = 2 * n * hw * hw * c * c * 9
        with torch.no_grad():
            conv(x)
            times = []
            for _ in range(reps):
                with Timer(device) as t:
                    conv(x)
                times.append(t.seconds)
        best = max(best, flops / min(times))
    return best


def matmul_peak(device: torch.device, n: int = 8192, reps: int = 10) -> float:
    """FLOP/s of an n x n x n bf16 matrix product on a GPU: the machine's practical bf16 peak
    (what a share of peak is measured against); None on a CPU."""
    if device.type != "cuda":
        return None
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    with Timer(device) as t:
        for _ in range(reps):
            a @ b
    return 2 * n**3 * reps / t.seconds


# ------------------------------------------------------------------ main


def worker_plain_channels_last(args) -> dict:
    """The plain loop with the layout stagegen's trainer uses, to show where the gain comes from."""
    return worker_plain(args, torch.channels_last)


WORKERS = {
    "plain": worker_plain,
    "plain-channels-last": worker_plain_channels_last,
    "stagegen": worker_stagegen,
    "pythae": worker_pythae,
}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="msvae-mnist,vae-mnist")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=10, help="steps per timed repetition")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--preset", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return
    device = torch.device(args.device)
    peak, mm_peak = conv_peak(device), matmul_peak(device)
    print(f"machine: {machine()}")
    print(f"measured conv peak: {peak / 1e9:.1f} GFLOP/s ({'bf16' if device.type == 'cuda' else 'fp32'}, channels-last 3x3)")
    if mm_peak:
        print(f"measured matmul peak: {mm_peak / 1e12:.0f} TFLOP/s (bf16, 8192^3)")
    print(
        f"batch {args.batch}, {args.precision}, compile={args.compile}, {args.reps} x {args.steps} steps after {args.warmup} warm-up"
    )
    rows = []
    for preset in args.presets.split(","):
        flops = flops_per_image(parse([*(argv or sys.argv[1:]), "--preset", preset]))
        has_pythae = importlib.util.find_spec("pythae") is not None
        if preset.startswith("vae-") and not has_pythae:
            print("pythae is not installed (pip install pythae, or the bench extra): its row is left out")
        who = ["plain", "plain-channels-last", "stagegen"] + (["pythae"] if preset.startswith("vae-") and has_pythae else [])
        results = {}
        for worker in who:
            cli = [*(argv or sys.argv[1:]), "--preset", preset, "--worker", worker]
            results[worker] = run_worker(__file__, cli)
        for worker, r in results.items():
            ips = r["images_per_second"]
            rows.append(
                {
                    "model": preset,
                    "trainer": worker,
                    "images_per_second": ips,
                    "vs_plain": ips / results["plain"]["images_per_second"],
                    "gflop_per_image": flops / 1e9,
                    "achieved_gflops": ips * flops / 1e9,
                    "fraction_of_conv_peak": ips * flops / peak,
                    "fraction_of_matmul_peak": ips * flops / mm_peak if mm_peak else None,
                    "peak_mb": r["peak_mb"],
                }
            )
    print()
    mm = " of bf16 matmul peak |" if mm_peak else ""
    print(f"| model | trainer | images/s | vs plain loop | GFLOP/image | achieved GFLOP/s | of conv peak |{mm} peak memory MB |")
    print("|---|---|---|---|---|---|---|" + ("---|" if mm_peak else "") + "---|")
    for r in rows:
        share = f" {r['fraction_of_matmul_peak']:.1%} |" if mm_peak else ""
        print(
            f"| {r['model']} | {r['trainer']} | {r['images_per_second']:.1f} | {r['vs_plain']:.2f}x | {r['gflop_per_image']:.3f} | "
            f"{r['achieved_gflops']:.1f} | {r['fraction_of_conv_peak']:.0%} |{share} {r['peak_mb']:.0f} |"
        )
    if args.json:
        document = {
            "benchmark": "train_speed",
            "settings": {k: v for k, v in vars(args).items() if k not in ("json", "worker", "preset")},
            "conv_peak_gflops": peak / 1e9,
            "matmul_peak_tflops": mm_peak / 1e12 if mm_peak else None,
            "rows": rows,
        }
        save_result(args.json, document)


if __name__ == "__main__":
    main()
