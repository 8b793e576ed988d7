"""Fleet: a local fleet of AI-agent workers sharing one durable task queue."""

__version__ = "0.1.0"
