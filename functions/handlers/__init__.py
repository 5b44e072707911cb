"""Thin Lambda handlers: parse the trigger, call the core, map errors to responses."""
