"""The process table as tests see it: what a test started must be gone when it ends."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_provider_sky.core.sshd import SshdNode


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line or environment mentions ``text`` (sshd nodes, detached jobs)."""
    needle = text.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (needle in cmdline or needle in environ):
            shown = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry}: {shown}")
    return found


def assert_nothing_left_running(sky_home: Path) -> None:
    """Fail if a process started under ``sky_home`` survived; stop local nodes first either way,
    so one broken test does not break the next ones."""
    leftovers = processes_mentioning(str(sky_home))
    for node_dir in sky_home.glob("local/*/node-*"):
        SshdNode(node_dir).stop()
    assert not leftovers, f"processes left running after the test: {leftovers}"
