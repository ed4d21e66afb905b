"""Federated learning core: client update, algorithms, aggregation, sampling, the round loop.

Nothing here imports Ray except `engine.py` (docs/architecture.md rule 5): algorithms and aggregation are
pure functions over numpy vectors, so their unit tests never start a runtime.
"""
