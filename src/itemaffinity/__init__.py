"""itemaffinity: product association analysis for e-commerce."""

from itemaffinity.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]
