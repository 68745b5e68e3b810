"""Joining a cluster that is not there is one line that says how to start one, and writes nothing."""

from __future__ import annotations

import pytest

from cluster.ray_session import start_ray
from configs.errors import UserError


@pytest.fixture
def no_cluster(monkeypatch):
    """No `ray start` on this machine: what Ray itself finds when none runs (another test's private
    Ray may be running beside this one, which `auto` would otherwise join)."""
    import ray
    from ray._private import services

    if ray.is_initialized():  # pragma: no cover - another test's Ray in this process
        pytest.skip("a Ray session is already open in this process")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def no_gcs() -> list:
        return []

    no_gcs.cache_clear = lambda: None  # Ray clears this function's cache before it looks
    monkeypatch.setattr(services, "find_gcs_addresses", no_gcs)
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    yield
    assert not ray.is_initialized()


def test_auto_with_no_cluster_running_is_one_line_naming_ray_start(no_cluster):
    with pytest.raises(UserError) as caught:
        start_ray(address="auto", quiet=True)
    message = str(caught.value)
    assert "\n" not in message
    assert "no Ray cluster found at 'auto'" in message and "ray start --head" in message


def test_hilserl_run_on_the_arm_preset_with_no_cluster_writes_nothing(no_cluster, tmp_path):
    from cluster.rl_run import run
    from configs import preset_path
    from configs.parsing import parse_config
    from configs.rl import TrainRLConfig

    cfg = parse_config(
        TrainRLConfig, ["--config_path", preset_path("so101_rl"), "--output_dir", str(tmp_path / "out")]
    )
    assert cfg.runtime.ray_address == "auto"
    with pytest.raises(UserError, match="ray start --head"):
        run(cfg)
    assert not (tmp_path / "out").exists()
