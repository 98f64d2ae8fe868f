"""Imports: bulk requests and files queued, then added row by row by the ImportRunner."""
