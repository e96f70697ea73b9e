"""rwscaler: sizes and routes the read side of a replicated database from read/write signals."""

__version__ = "0.1.0"
