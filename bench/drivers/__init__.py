"""Client drivers: one module per pattern, all implementing `base.Driver`."""

from bench.drivers.base import Connection, Driver, DriverContext, ResponseInvalid, Target

__all__ = ["Connection", "Driver", "DriverContext", "ResponseInvalid", "Target"]
