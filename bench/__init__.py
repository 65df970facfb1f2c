"""The scenario runner: scenario schema, load engine, drivers, metrics, results and charts."""

__version__ = "0.1.0"
