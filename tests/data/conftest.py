import pytest


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGEGEN_CACHE", str(tmp_path / "cache"))
