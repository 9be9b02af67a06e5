"""The interface every region layer implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from terrmap.store import Store


class Layer(ABC):
    key: str  # stable identifier stored with plans: "zip", "h3:6"
    label: str  # what a person reads

    @abstractmethod
    def region_key_sql(self, leads: str = "l") -> str:
        """SQL expression grouping rows of ``leads`` (an alias of the leads table) by region.

        It may be cheaper than the region id (an integer for H3); use
        :meth:`region_id_sql` to turn it into the id people and files see.
        """

    def region_id_sql(self, key: str) -> str:
        """SQL turning a region key expression into the region id (VARCHAR)."""
        return key

    @abstractmethod
    def shapes(self, store: "Store", region_ids: Sequence[str]) -> dict[str, dict]:
        """GeoJSON geometry (lon/lat) of each region id; unknown ids are left out."""

    def region_centroids(self, store: "Store", region_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """(lat, lon) of a representative point of each region id; unknown ids are left out.

        Every layer should implement it (routes and labels need it).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement region_centroids")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layer) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)
