"""Burgo: an open IoT data platform for small and medium-sized cities."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("burgo")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
