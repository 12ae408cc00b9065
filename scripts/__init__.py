"""Scripts: run from the repository root as modules, e.g. ``python -m scripts.screenshot``."""
