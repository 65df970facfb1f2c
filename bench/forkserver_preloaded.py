"""Imported last by the generators' fork server (bench/generators.py), once it has imported
everything a generator needs: freezes those objects (gc.freeze), Python's advice before
forking, so that a generator's collections neither walk them nor copy the pages they are
on. A module for it because the standard library's fork server runs no code of ours but
the imports it is given. Importing it anywhere else would freeze that process's objects:
nothing else imports it."""

from __future__ import annotations

import gc

gc.freeze()
