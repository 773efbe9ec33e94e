import pytest

from stagegen.config import RunConfig
from stagegen.train import train

from ..conftest import tiny_run_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real run of the tiny two-stage pipeline on the digits: grids every 4 steps, a fitted
    gmm prior and one per digit, its report written by the run itself."""
    data = tiny_run_config(steps=12, sample_every=4, log_every=2).model_dump()
    data["pipeline"]["prior"] = {"type": "gmm", "options": {"components": 3}}
    config = RunConfig.model_validate(data)
    run_dir = tmp_path_factory.mktemp("run") / "run"
    result = train(config, run_dir)
    assert result.report_path == run_dir / "report.html"
    return run_dir
