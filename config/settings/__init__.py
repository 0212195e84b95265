"""Settings package: base, local (development), test and production."""
