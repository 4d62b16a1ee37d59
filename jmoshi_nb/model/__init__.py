"""The model side: moshi's API, checkpoints and the model registry's loaders, the tiny model, the engine."""
