"""Built-in gameable environments, one per file."""
