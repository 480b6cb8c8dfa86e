"""The pure core: decisions over plain data; no clock, socket or file."""
