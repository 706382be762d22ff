"""SshReadyTrigger: waits in the triggerer until every node accepts SSH with its pinned key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_sky.hooks.sky import DEFAULT_CONN_ID


class SshReadyTrigger(BaseTrigger):
    """Poll every node until all run ``true`` over SSH, or until ``deadline``.

    Only JSON types are kept: the private key is read again from the connection in the
    triggerer, so it never lands in the trigger table. Events (never exceptions):
    ``{"status": "success", "handle": ...}``, ``{"status": "timeout" | "error", "message": ...}``.

    :param handle: the cluster handle dict (the launch task's output).
    :param sky_conn_id: the ``sky`` connection to read the key from.
    :param deadline: UNIX time after which to give up (None: never).
    :param poll_interval: seconds between rounds.
    :param cloud_conn_id: the cloud account's connection (AWS clusters), overriding the sky connection's.
    """

    def __init__(
        self,
        handle: dict[str, Any],
        sky_conn_id: str = DEFAULT_CONN_ID,
        deadline: float | None = None,
        poll_interval: float = 1.0,
        cloud_conn_id: str | None = None,
    ) -> None:
        super().__init__()
        self.cloud_conn_id = cloud_conn_id
        self.handle = handle
        self.sky_conn_id = sky_conn_id
        self.deadline = deadline
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "handle": self.handle,
                "sky_conn_id": self.sky_conn_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "cloud_conn_id": self.cloud_conn_id,
            },
        )

    def _connect(self) -> Any:
        from airflow_provider_sky.hooks.sky import SkyHook

        return SkyHook(self.sky_conn_id, cloud_conn_id=self.cloud_conn_id).from_handle(self.handle)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        name = self.handle.get("cluster_name", "?")
        cluster = None
        try:
            cluster = await asyncio.to_thread(self._connect)
            while True:
                ready = await asyncio.to_thread(cluster.ssh_ready_nodes)
                if all(ready):
                    yield TriggerEvent({"status": "success", "handle": cluster.handle.to_dict()})
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    waiting = ", ".join(str(rank) for rank, ok in enumerate(ready) if not ok)
                    yield TriggerEvent(
                        {"status": "timeout", "message": f"cluster {name!r}: node(s) {waiting} not ready over SSH"}
                    )
                    return
                self.log.info("Cluster %r: %d of %d node(s) ready over SSH", name, sum(ready), len(ready))
                await asyncio.sleep(self.poll_interval)
        except Exception as exc:
            yield TriggerEvent({"status": "error", "message": f"cluster {name!r}: {type(exc).__name__}: {exc}"})
        finally:
            if cluster is not None:
                cluster.close()
