"""Registry hooks: the promotion gate and the MLflow webhook receiver (DESIGN.md, "Layout")."""
