"""ZIP polygons (placeholder until the Voronoi builder lands)."""


def ensure_zip_shapes(store) -> None:
    raise NotImplementedError
