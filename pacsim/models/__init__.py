"""Learners. Each module exposes array-level functions usable without any config."""

from . import rnn

__all__ = ["rnn"]
