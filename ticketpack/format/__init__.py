"""The torch-free format core of .tpk files (docs/FORMAT.md)."""
