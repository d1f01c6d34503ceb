"""The package version, in a module of its own: provenance records it without importing the
package's own ``__init__`` (whose public names load ticketpack.own on first use)."""

__version__ = "0.1.0"
