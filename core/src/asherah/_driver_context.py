"""What a driver is told about the factory that builds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asherah._config import Config


@dataclass(frozen=True, slots=True)
class DriverContext:
    """Identity and full configuration, for drivers that need more than their own options."""

    service_name: str
    product_id: str
    config: Config
