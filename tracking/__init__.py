"""The MLflow adapter (placeholder until the registry moves here)."""
