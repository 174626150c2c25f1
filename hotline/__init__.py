"""Elder Hotline: one tap from a senior to a human agent."""

__version__ = "0.1.0"
