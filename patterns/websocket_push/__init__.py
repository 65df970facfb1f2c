"""The websocket_push pattern folder: see NOTES.md here and entry.py for what it registers."""
