"""One ``Router`` per noun; ``handlers/api.py`` includes them all in its one resolver."""
