"""rivermon: river ecological monitoring.

The package is one import namespace mapped onto the repository's top-level folders:
``rivermon.core`` (core/) holds what every part shares; ``rivermon.ingest``, ``rivermon.models``,
``rivermon.web`` and ``rivermon.sim`` import it and never each other's internals.
"""

__version__ = "0.1.0"
