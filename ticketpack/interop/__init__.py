"""Importers of tickets and weights trained elsewhere (parameter-golf, ternary)."""
