"""Exceptions raised by the provisioning core.

Every error a user can fix by changing their input is a :class:`SkyConfigError`;
it subclasses ``ValueError`` so that callers that only know Python's builtins
still treat it as bad input.
"""

from __future__ import annotations


class SkyError(Exception):
    """Base class of every error the core raises on purpose."""


class SkyConfigError(SkyError, ValueError):
    """Bad user input: the message names the field, the bad value and the accepted forms."""


class ClusterNotFoundError(SkyError):
    """The named cluster does not exist (or no longer exists) on its cloud."""


class ClusterMismatchError(SkyConfigError):
    """A live cluster of that name exists but does not fit the requested resources."""


class CapacityError(SkyError):
    """The cloud could not provide the requested nodes (no free hosts, no capacity)."""


class HostKeyMismatchError(SkyError):
    """A node presented a host key different from the one pinned at first contact."""


class SshConnectError(SkyError):
    """A node did not accept an SSH connection within the allowed time."""


class CommandTimeoutError(SkyError):
    """A remote command did not finish within its timeout."""


class JobNotFoundError(SkyError):
    """No job with that id exists on the cluster."""
