"""AwsLaunchTrigger: waits in the triggerer until every EC2 instance of a launch is running."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_sky.hooks.sky import DEFAULT_CONN_ID


class AwsLaunchTrigger(BaseTrigger):
    """Poll the instances of a started launch (a ``LaunchTicket`` dict) until all run.

    Only JSON types are kept; the AWS session is built again in the triggerer from the AWS
    connection. Events (never exceptions), each carrying ``resume`` back to the task:
    ``{"status": "success", "handle": ...}``; ``{"status": "interrupted", "zone": ..., "message": ...}``
    when instances ended while starting (the task launches again skipping that zone);
    ``{"status": "timeout" | "error", "message": ...}``.

    :param ticket: what ``AwsCloud.begin_launch`` returned, as a dict.
    :param sky_conn_id: the ``sky`` connection.
    :param aws_conn_id: the AWS connection (None: the sky connection's ``cloud_conn_id`` or ``aws_default``).
    :param deadline: UNIX time after which to give up (None: never).
    :param poll_interval: seconds between polls.
    :param resume: JSON the task needs when it resumes (echoed in every event).
    """

    def __init__(
        self,
        ticket: dict[str, Any],
        sky_conn_id: str = DEFAULT_CONN_ID,
        aws_conn_id: str | None = None,
        deadline: float | None = None,
        poll_interval: float = 5.0,
        resume: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.ticket = ticket
        self.sky_conn_id = sky_conn_id
        self.aws_conn_id = aws_conn_id
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.resume = resume or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ticket": self.ticket,
                "sky_conn_id": self.sky_conn_id,
                "aws_conn_id": self.aws_conn_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "resume": self.resume,
            },
        )

    def _cloud(self) -> Any:
        from airflow_provider_sky.hooks.sky import SkyHook

        return SkyHook(self.sky_conn_id, cloud_conn_id=self.aws_conn_id).get_cloud("aws")

    def _event(self, payload: dict[str, Any]) -> TriggerEvent:
        return TriggerEvent({**payload, "resume": self.resume})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_sky.core.clouds.aws import LaunchInterruptedError

        name = self.ticket.get("cluster_name", "?")
        try:
            cloud = await asyncio.to_thread(self._cloud)
            while True:
                try:
                    handle = await asyncio.to_thread(cloud.poll_launch, self.ticket)
                except LaunchInterruptedError as exc:
                    yield self._event({"status": "interrupted", "zone": exc.zone, "message": str(exc)})
                    return
                if handle is not None:
                    yield self._event({"status": "success", "handle": handle.to_dict()})
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield self._event(
                        {"status": "timeout", "message": f"cluster {name!r}: instances not running in time"}
                    )
                    return
                self.log.info("Cluster %r: waiting for %d instance(s) to run", name, len(self.ticket["instance_ids"]))
                await asyncio.sleep(self.poll_interval)
        except Exception as exc:
            yield self._event({"status": "error", "message": f"cluster {name!r}: {type(exc).__name__}: {exc}"})
