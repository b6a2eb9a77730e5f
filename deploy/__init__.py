"""Deployment tooling: builds the Function App package. Never deployed itself."""
