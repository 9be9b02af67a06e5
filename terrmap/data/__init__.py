"""The only code that knows the schema: the DuckDB store, migrations, roll-up, region stats, stored plans."""
