"""One module per API pattern: minimal, idiomatic servers over the shared dataset.

Each is a standalone process (`python -m servers.<pattern>`), started, health-checked and
stopped by the runner. They share `dataset` (the records) and `runtime` (command line,
socket binding, readiness).
"""
