"""Geographic constants and distances: the one place terrmap knows the size of the Earth."""

from __future__ import annotations

import math

import numpy as np

# IUGG mean Earth radius.
EARTH_RADIUS_KM = 6371.0088
# One degree of latitude (or of longitude at the equator) on that sphere: ~111.195 km.
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees; arrays broadcast."""
    p1, l1, p2, l2 = (np.radians(np.asarray(x, dtype=float)) for x in (lat1, lon1, lat2, lon2))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def distance_matrix_km(lat, lon) -> np.ndarray:
    """Pairwise great-circle km between the points (lat[i], lon[i])."""
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    return haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])


def km_offsets_to_degrees(lat, north_km, east_km) -> tuple[np.ndarray, np.ndarray]:
    """Offsets in km at latitude ``lat`` -> (dlat, dlon) in degrees (local flat-Earth approximation)."""
    lat = np.asarray(lat, dtype=float)
    dlat = np.asarray(north_km, dtype=float) / KM_PER_DEGREE
    dlon = np.asarray(east_km, dtype=float) / (KM_PER_DEGREE * np.maximum(np.cos(np.radians(lat)), 1e-6))
    return dlat, dlon
