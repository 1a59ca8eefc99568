"""The search and the user's surface: configuration, evolution, proxy evaluation, export, CLI."""
