"""Supermasks over any torch module: masked twins of common layers (``modules``) and the
one-call converter (``supermask``)."""
