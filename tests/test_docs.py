"""Every fenced code block in README.md and docs/*.md runs as written.

- ```python blocks run in a fresh interpreter, in document order, in a scratch folder; a block
  right after ``<!-- excerpt: PATH -->`` quotes a file instead, and must appear in it line for
  line (so quotations cannot drift from the code). A block that defines a ``register_stages``
  hook also has every stage it registers built and run forward and through its loss; one that
  registers priors has each sampled, one that registers metrics has each computed.
- ```bash blocks: every command runs in that scratch folder, in order (so a run one command
  trains is there for the next), with ``../shared`` beside it the project's real shared data.
  Training is shortened by flags appended after the written ones (click keeps the last value):
  ``--steps 2 --batch-size 8`` (a resumed run: ``--steps 4``, then 6, ...). Commands that need a GPU,
  several machines or the network are listed in ``SKIPPED`` with the reason; pip installs are
  checked by tests/test_install.py; benchmark scripts by tests/test_benchmarks.py.
- ```toml blocks must parse; untagged blocks are illustrations (layouts, synopses).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SKIPPED = {
    "--index-url": "installs PyTorch from the PyTorch index: needs the internet",
    "--nnodes": "needs several machines",
    "--nproc-per-node 4": "needs four GPUs",
    "--device cuda": "needs a GPU",
    "pip install": "installs are checked in a fresh venv by tests/test_install.py",
    "pytest": "the test command itself: this test runs inside it",
    "benchmarks/": "benchmarks run with tiny settings in tests/test_benchmarks.py",
    "my-face.jpg": "edits a photo of the reader's own; tests/cli/test_conditional.py edits image files",
}


def _blocks(path: Path):
    """(language, code, excerpt source or None, line number) for each fenced block."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\w*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        previous = lines[i - 1] if i else ""
        excerpt = re.match(r"<!-- excerpt: (\S+) -->", previous)
        start = i + 1
        end = start
        while not lines[end].startswith("```"):
            end += 1
        yield match.group(1), "\n".join(lines[start:end]), excerpt.group(1) if excerpt else None, start
        i = end + 1


def _commands(code: str) -> list[str]:
    text = code.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip() if not line.lstrip().startswith("#") else ""
        commands += [" ".join(part.split()) for part in line.split("&&") if part.strip()]
    return commands


def _skip_reason(command: str, missing: dict[str, str] | None = None) -> str | None:
    """Why ``command`` is not run, or None. ``missing``: what skipped commands would have made
    (their ``--out`` / ``-o``), so a command that uses it is skipped with them."""
    for key, reason in SKIPPED.items():
        if key in command:
            return reason
    if "../shared" in command and not SHARED.is_dir():
        return f"needs the shared data at {SHARED}"
    words = shlex.split(command)
    for made, where in (missing or {}).items():
        if any(word == made or word.startswith(made.rstrip("/") + "/") for word in words):
            return f"uses {made}, which the skipped command {where} would have made"
    return None


def _made_by(command: str) -> list[str]:
    """What a command writes: the value of its --out or -o."""
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("--out", "-o")]


def _shortened(command: str, resumes: dict[str, int] | None = None) -> str:
    """``command`` with training shortened; ``resumes`` counts earlier resumes of each run, so
    every resume of a run goes two steps further (a resume to a step already reached is refused)."""
    words = shlex.split(command)
    if "train" in words and ("stagegen" in words[:1] or "stagegen" in words):
        if "--help" in words:
            return command
        if "--resume" in words:
            run = words[words.index("--resume") + 1]
            done = (resumes or {}).get(run, 0)
            if resumes is not None:
                resumes[run] = done + 1
            extra = ["--steps", str(4 + 2 * done)]
        else:
            extra = ["--steps", "2", "--batch-size", "8"]
        return shlex.join(words + extra + ["--no-progress"])
    return command


def _edge_is_installed() -> bool:
    try:
        import stagegen_edge  # noqa: F401
    except ImportError:
        return False
    return True


BUILD_AND_RUN = """
import sys
import torch
import stagegen.plugin.manager as plugins
from stagegen.config import PipelineConfig
from stagegen.pipeline import Pipeline

# the installed plugins plus this block's hooks, as if the block were an installed package
manager = plugins.PluginManager()
manager.register(sys.modules[__name__], name="docs-block")
plugins._manager = manager
made = {}
for hook in ("register_losses", "register_networks", "register_stages"):
    if hook in globals():
        collected = []
        globals()[hook](collected.append)
        made[hook] = [t.name for t in collected]
        for t in collected:
            assert t.description, f"{t.name} has no description"
trunk = {"type": "vae", "options": {"widths": [8, 16], "latent_dim": 8}}
stages = [{"type": n} for n in made.get("register_stages", [])]
stages += [{"type": n, "losses": [{"type": "l1"}]} for n in made.get("register_networks", [])]
stages += [{"type": "resnet", "options": {"width": 8, "blocks": 1}, "losses": [{"type": n}]} for n in made.get("register_losses", [])]
for stage in stages:
    pipe = Pipeline(PipelineConfig.model_validate({"image_size": 16, "channels": 1, "stages": [trunk, stage]})).train()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    terms = {k: v for k, v in pipe.objective.logged_terms(x, pipe(x)).items() if k.startswith("stage1/")}
    assert terms and all(torch.isfinite(v) for v in terms.values()), (stage, terms)
print("built and ran", made)
"""


BUILD_AND_SAMPLE = """
import torch
from stagegen.priors import PriorContext
collected = []
register_priors(collected.append)
for prior_type in collected:
    assert prior_type.description, f"{prior_type.name} has no description"
    prior = prior_type.build(prior_type.validate_options({}), PriorContext((4,)))
    z = prior.sample(3, torch.Generator().manual_seed(0))
    assert z.shape == (3, 4) and torch.isfinite(z).all()
print("built and sampled", [t.name for t in collected])
"""


MEASURE = """
import torch
from stagegen.metrics import MetricContext
collected = []
register_metrics(collected.append)
images = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
ctx = MetricContext(stage=0, resolution=16, real=images, reconstructions=images, samples=images.flip(0), final_real=images)
for metric in collected:
    assert metric.description, f"{metric.name} has no description"
    values = metric.compute(ctx)
    assert values and set(values) <= set(metric.better), (metric.name, values, metric.better)
print("measured", {m.name: m.compute(ctx) for m in collected})
"""


def _run(args, cwd, env, what):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, classifier_cache):
    """A folder with ``../shared`` beside it, and the environment the commands run in."""
    root = tmp_path_factory.mktemp("docs")
    work = root / "work"
    work.mkdir()
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "STAGEGEN_CACHE": str(classifier_cache)}
    return work, env


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_code_block_runs_as_written(document, scratch):
    work, env = scratch
    skipped = []
    missing: dict[str, str] = {}  # what skipped commands would have made
    resumes: dict[str, int] = {}  # per run directory, in document order
    for language, code, excerpt, line in _blocks(document):
        where = f"{document.name}:{line}"
        if excerpt:
            quoted = [line.strip() for line in code.splitlines() if line.strip()]
            source = [line.strip() for line in (ROOT / excerpt).read_text().splitlines() if line.strip()]
            assert any(source[i : i + len(quoted)] == quoted for i in range(len(source))), (
                f"{where}: the excerpt is not in {excerpt} as written"
            )
        elif language == "python":
            if "stagegen_edge" in code and not _edge_is_installed():
                skipped.append((where, "the example plugin is not installed"))
                continue
            registers = any(f"def register_{kind}" in code for kind in ("stages", "networks", "losses"))
            program = code + ("\n" + BUILD_AND_RUN if registers else "")
            program += "\n" + BUILD_AND_SAMPLE if "def register_priors" in code else ""
            program += "\n" + MEASURE if "def register_metrics" in code else ""
            _run([sys.executable, "-c", textwrap.dedent(program)], work, env, f"the python block at {where}")
        elif language == "bash":
            for command in _commands(code):
                reason = _skip_reason(command, missing)
                if reason is None and "edge" in command and not _edge_is_installed():
                    reason = "the example plugin is not installed"
                if reason:
                    skipped.append((f"{where}: {command}", reason))
                    missing.update({made: where for made in _made_by(command)})
                    continue
                _run(["bash", "-c", _shortened(command, resumes)], work, env, f"`{command}` ({where})")
        elif language == "toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            tomllib.loads(code)
    for command, reason in skipped:
        print(f"not run: {command} ({reason})")


def test_documented_runs_write_inside_the_working_folder():
    # A run written to an absolute path outlives the scratch folder: the next check on the same
    # machine finds it there, and train rightly refuses an --out that holds a run.
    absolute = []
    for document in DOCUMENTS:
        for language, code, excerpt, line in _blocks(document):
            if language != "bash" or excerpt:
                continue
            for command in _commands(code):
                words = shlex.split(command)
                for flag, value in zip(words, words[1:]):
                    if flag in ("--out", "-o") and value.startswith(("/", "~")):
                        absolute.append(f"{document.name}:{line}: {command}")
    assert not absolute, "use a relative --out:\n" + "\n".join(absolute)


def test_the_rules_above_find_blocks_and_commands():
    blocks = list(_blocks(ROOT / "README.md"))
    assert any(language == "bash" for language, *_ in blocks) and any(language == "python" for language, *_ in blocks)
    assert _commands("a --x \\\n  --y  # note\nb && c") == ["a --x --y", "b", "c"]
    assert _shortened("stagegen train --out runs/a").endswith("--steps 2 --batch-size 8 --no-progress")
    resumes: dict[str, int] = {}
    assert _shortened("stagegen train --resume runs/a --steps 3000", resumes).endswith("--steps 4 --no-progress")
    assert _shortened("stagegen train --resume runs/a", resumes).endswith("--steps 6 --no-progress")
    assert _skip_reason("python -m pip install .") is not None
    # a command that uses what a skipped one would have made is skipped with it
    missing = {made: "x.md:1" for made in _made_by("stagegen train --data-root ../nowhere --out runs/m")}
    assert missing == {"runs/m": "x.md:1"}
    assert "runs/m" in _skip_reason("stagegen train --resume runs/m", missing)
    assert "runs/m" in _skip_reason("stagegen sample runs/m/pipeline.safetensors -o g.png", missing)
    assert _skip_reason("stagegen train --resume runs/other", missing) is None
