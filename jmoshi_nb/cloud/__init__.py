"""Modal: settings (no modal import), the app, the notebook/sweep backend, the CLI."""
