"""dialbase: a lead store for outbound dialer campaigns."""

__version__ = "0.1.0"
