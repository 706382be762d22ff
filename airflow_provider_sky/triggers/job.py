"""SkyJobTrigger: follows a detached job in the triggerer and hands its log lines back in chunks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_sky.hooks.sky import DEFAULT_CONN_ID, LOG_READ_BYTES, poll_job

#: Hand logs back once this much is pending even if log_interval has not passed (it travels in the event).
MAX_PENDING_BYTES = 256 * 1024


class SkyJobTrigger(BaseTrigger):
    """Poll a job's status and read its log from ``offset`` until it ends.

    The trigger yields once and ends: ``{"status": "logs", "logs": ..., "offset": [...]}`` when lines
    waited ``log_interval`` seconds (the operator logs them and defers again from the new offset),
    ``{"status": "finished", "job": JobStatus.to_dict(), "logs": ..., "offset": [...]}`` at the end, or
    ``{"status": "error" | "timeout", "message": ...}``. It never raises. When one node fails while others
    still run, it cancels the job (a multi-node job cannot succeed any more), as the blocking path does.

    :param handle: the cluster handle dict.
    :param job_id: the job to follow.
    :param sky_conn_id: the ``sky`` connection (the key is read in the triggerer, never stored here).
    :param offset: per-node byte offsets of the log already shown.
    :param poll_interval: seconds between polls.
    :param log_interval: longest time log lines wait before being handed back to the task.
    :param deadline: UNIX time after which to stop waiting (None: never).
    :param read_bytes: log bytes read per node per poll.
    """

    def __init__(
        self,
        handle: dict[str, Any],
        job_id: str,
        sky_conn_id: str = DEFAULT_CONN_ID,
        offset: list[int] | int = 0,
        poll_interval: float = 1.0,
        log_interval: float = 30.0,
        deadline: float | None = None,
        read_bytes: int = LOG_READ_BYTES,
    ) -> None:
        super().__init__()
        self.handle = handle
        self.job_id = job_id
        self.sky_conn_id = sky_conn_id
        self.offset = offset
        self.poll_interval = poll_interval
        self.log_interval = log_interval
        self.deadline = deadline
        self.read_bytes = read_bytes

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "handle": self.handle,
                "job_id": self.job_id,
                "sky_conn_id": self.sky_conn_id,
                "offset": self.offset,
                "poll_interval": self.poll_interval,
                "log_interval": self.log_interval,
                "deadline": self.deadline,
                "read_bytes": self.read_bytes,
            },
        )

    def _connect(self) -> Any:
        from airflow_provider_sky.hooks.sky import SkyHook

        return SkyHook(self.sky_conn_id).from_handle(self.handle)

    def _event(self, payload: dict[str, Any]) -> TriggerEvent:
        # Every event carries what the task needs to resume (and to defer again): some runners
        # (dag.test) resume with the event alone, without the kwargs given to defer().
        return TriggerEvent({**payload, "handle": self.handle, "job_id": self.job_id, "deadline": self.deadline})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        cluster = None
        offset: list[int] | int = self.offset
        pending = bytearray()
        pending_since: float | None = None
        try:
            cluster = await asyncio.to_thread(self._connect)
            while True:
                poll = await asyncio.to_thread(poll_job, cluster, self.job_id, offset, self.read_bytes)
                status, offset = poll.status, poll.offset
                if poll.data:
                    pending += poll.data
                    pending_since = pending_since or time.monotonic()
                if status.state.value == "FAILED" and not all(n.state.finished for n in status.nodes):
                    await asyncio.to_thread(cluster.cancel, self.job_id)
                if poll.more and len(pending) < MAX_PENDING_BYTES:
                    continue  # finished, but output is still unread: read on without waiting
                if poll.done:
                    yield self._event(
                        {
                            "status": "finished",
                            "job": status.to_dict(),
                            "logs": pending.decode("utf-8", "replace"),
                            "offset": offset,
                        }
                    )
                    return
                if pending_since is not None and (
                    time.monotonic() - pending_since >= self.log_interval or len(pending) >= MAX_PENDING_BYTES
                ):
                    yield self._event({"status": "logs", "logs": pending.decode("utf-8", "replace"), "offset": offset})
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield self._event(
                        {
                            "status": "timeout",
                            "message": f"job {self.job_id} still running at its deadline",
                            "logs": pending.decode("utf-8", "replace"),
                            "offset": offset,
                        }
                    )
                    return
                await asyncio.sleep(self.poll_interval)
        except Exception as exc:
            yield self._event(
                {
                    "status": "error",
                    "message": f"job {self.job_id}: {type(exc).__name__}: {exc}",
                    "logs": pending.decode("utf-8", "replace"),
                    "offset": offset,
                }
            )
        finally:
            if cluster is not None:
                cluster.close()
