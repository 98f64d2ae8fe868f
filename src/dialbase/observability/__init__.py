"""Seeing a running dialbase: Prometheus metrics, request logs with ids, scrape-time gauges."""
