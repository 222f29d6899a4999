"""Compression job for Chinese NLP models: PaddleSlim ACT on UIE and CLUE classifiers."""

__version__ = "0.1.0"
