"""pacsim: sample complexity of provable learning, on the bench."""

__version__ = "0.1.0"

