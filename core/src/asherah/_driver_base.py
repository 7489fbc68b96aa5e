"""What the KMS and metastore interfaces share: the options a driver is loaded with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from asherah._config import Config
    from asherah._driver_context import DriverContext


class NoOptions(BaseModel):
    """Options model for a driver that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DriverBase:
    """The loader's side of a driver (its options model and how it is built from it), shared by
    the :class:`KeyManagementService` and :class:`Metastore` ABCs."""

    #: The pydantic model the driver loader validates options against before construction.
    Options: ClassVar[type[BaseModel]] = NoOptions

    @classmethod
    def options_from_config(cls, config: Config) -> dict[str, Any]:
        """Driver options taken from the canonical flat keys (``ConnectionString``,
        ``StaticMasterKeyHex``, ...)."""
        return {}

    @classmethod
    def from_options(cls, options: Any, context: DriverContext) -> Self:
        """Build the driver from validated options. Drivers with options override this."""
        return cls()
