"""Text and tokens: tokenizers, corpus loading and the quickstart's data."""
