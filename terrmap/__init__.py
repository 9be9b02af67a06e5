"""terrmap: sales-territory mapping and planning.

All logic lives here and imports without Streamlit:

* :mod:`terrmap.data.store`: the DuckDB file and its schema;
* :mod:`terrmap.ingest`: reading and validating lead files;
* :mod:`terrmap.geo`: region layers (H3, ZIP) and reference geography;
* :mod:`terrmap.data.stats`: per-region statistics in SQL;
* :mod:`terrmap.plan` (live partition, metrics, colours) and :mod:`terrmap.data` (store, region stats, stored plans);
* :mod:`terrmap.scoring`: lead scores and expected values;
* :mod:`terrmap.demo`: the demo database;
* :mod:`terrmap.mapview`: building the folium map (no Streamlit).
"""

__version__ = "0.1.0"
