"""Unit tests of the pure statistics core ``shared.stats``."""
