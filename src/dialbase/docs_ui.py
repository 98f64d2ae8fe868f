"""The interactive API docs (``/docs``), served with assets from the package (no CDN)."""

from __future__ import annotations

from fastapi import FastAPI


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` to ``app`` (created with ``docs_url=None, redoc_url=None``)."""
