"""The rest pattern folder: see NOTES.md here and entry.py for what it registers."""
