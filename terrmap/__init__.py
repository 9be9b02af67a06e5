"""terrmap: sales-territory mapping and planning.

All logic lives here and imports without Streamlit:

* :mod:`terrmap.data`: the DuckDB file and its schema, per-region statistics in SQL, stored plans;
* :mod:`terrmap.io.ingest`: reading and validating lead files;
* :mod:`terrmap.geo`: region layers (H3, ZIP) and reference geography;
* :mod:`terrmap.plan`: the live partition with incremental tallies, metrics, colours;
* :mod:`terrmap.scoring`: lead scores and expected values;
* :mod:`terrmap.demo`: the demo database;
* :mod:`terrmap.app`: the Streamlit side: widgets, the maps (:mod:`terrmap.app.maps`, scripts in static/terrmap/).
"""

__version__ = "0.1.0"
