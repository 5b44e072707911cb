"""One function per route: models in, one call into the core (or a read), a model out."""
