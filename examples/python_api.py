"""Train, load and sample from Python: the same steps as `stagegen train` and `stagegen sample`.

python examples/python_api.py [OUT_DIR]
"""

import sys
from pathlib import Path

import stagegen
from stagegen.config.presets import compose_run_config
from stagegen.images import save_grid
from stagegen.train import train

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/python-api")

# The default preset on the embedded digits (calibrated trunk, l1 refiner, fitted mixture prior),
# made a three-stage chain: vae -> resnet-l1 -> resnet-l1 (x2 up)
config = compose_run_config(
    "sharp-digits",
    stages=["vae", "resnet-l1", "resnet-l1"],
    options=["2.scale=2", "2.width=16", "2.blocks=2", "2.head_width=32"],
    pipeline__image_size=32,
    train__steps=300,
)
result = train(config, out)  # prints what it trains, then a progress bar
print("final losses:", {k: round(v, 4) for k, v in result.losses[-1].items() if "/" in k})

pipe = stagegen.load(result.pipeline_path)
stages = pipe.sample(8, seed=0, return_stages=True)  # coarse 16x16, refined 16x16, refined and upsampled 32x32
print("stage shapes:", [tuple(s.shape) for s in stages])
save_grid(stages, out / "api-samples.png")
print("wrote", out / "api-samples.png")
