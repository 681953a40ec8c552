"""The MLflow webhook receiver: delivery signatures, the durable job queue, event routing,
the workers that scan new versions and the protected-alias guard (README, "Webhooks")."""
