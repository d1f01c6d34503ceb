"""ticketpack: language models stored as a seed, masks and a few scales."""

__version__ = "0.1.0"
