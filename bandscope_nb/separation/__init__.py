"""Separation: models, their weights, devices, the chunked engine, the result cache, batches.

The only layer that imports torch and demucs (lazily: importing it loads neither).
"""
