"""Joining or starting Ray, quietly: the one place our commands call ``ray.init``.

    started = start_ray(address=None, num_cpus=None, dashboard=True)   # private local Ray
    started = start_ray(address="auto")                                 # a `ray start` cluster
    ...
    if started: ray.shutdown()

Under ``ray job submit`` (``RAY_ADDRESS`` set) the job's cluster is joined whatever the config
says. Ray's own INFO logs, its colour codes in redirected output and Ray Train's preemption
watcher are turned off, so a user sees our progress and Ray's errors only.
"""

from __future__ import annotations

import logging
import os
import sys

from configs.errors import UserError

logger = logging.getLogger(__name__)


def quiet_ray_environment() -> None:
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")  # nothing to preempt here
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no ANSI codes in redirected logs
    for name in ("ray", "ray.train", "ray.tune", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def start_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    dashboard: bool = False,
    quiet: bool = False,
    object_store_mb: int | None = None,
    resources: dict[str, float] | None = None,
) -> bool:
    """Attach to a cluster (``address`` or RAY_ADDRESS) or start a private local Ray. True if we started one."""
    import ray

    if ray.is_initialized():
        return False
    quiet_ray_environment()
    logging_config = ray.LoggingConfig(log_level="ERROR")
    if os.environ.get("RAY_ADDRESS") or address:
        target = os.environ.get("RAY_ADDRESS") or address
        try:
            ray.init(
                address=None if os.environ.get("RAY_ADDRESS") else address,
                log_to_driver=not quiet,
                logging_level=logging.ERROR,
                logging_config=logging_config,
            )
        except ConnectionError:
            raise UserError(
                f"no Ray cluster found at {target!r}: start one with `ray start --head` "
                "(and `ray start --address=<head>:6379` on each other node), or set ray_address to null for a "
                "private local Ray"
            ) from None
        return False
    kwargs = dict(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=dashboard,
        log_to_driver=not quiet,
        logging_level=logging.ERROR,
        logging_config=logging_config,
    )
    if resources:
        kwargs["resources"] = dict(resources)  # custom resources this machine offers (a rehearsal's arm)
    if object_store_mb is not None:
        kwargs["object_store_memory"] = object_store_mb * 2**20
    try:
        ray.init(**kwargs)
    except Exception as err:  # noqa: BLE001
        # Ray gives its raylet a fixed 30 s to register; a saturated 2-core box can miss that once.
        if "timed out during startup" not in str(err):
            raise
        logger.warning("local Ray did not start in time (%s); retrying once", err)
        ray.shutdown()
        ray.init(**kwargs)
    return True
