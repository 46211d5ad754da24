"""The warehouse layer: client (connect, run SQL), embedded server, dialect differences, marker target."""

from tasks.warehouse.client import WarehouseClient, connect, session
from tasks.warehouse.target import MarkerTableTarget, marker_days

__all__ = ["MarkerTableTarget", "WarehouseClient", "connect", "marker_days", "session"]
