"""The `arcade` command: log in to Arcade Cloud and manage usage analytics."""
