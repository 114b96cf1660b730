"""The backend: a FastAPI service with health, readiness, metrics and /api/items."""
