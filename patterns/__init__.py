"""One folder per pattern: its registry entry (`entry.py`), its server (`server.py`, run as
its own process), its client driver (`driver.py`), what the two share, and its notes
(`NOTES.md`). `bench.registry` finds every folder here; nothing in the core names one."""
