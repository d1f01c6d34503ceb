"""Scoring and sampling of trained models."""
