"""The toy world shipped with the package: generator, trained models, check (docs/world.md).

May import the base modules, diffusion/, editors/, the engine and metrics/, never the harness or the CLI.
"""
