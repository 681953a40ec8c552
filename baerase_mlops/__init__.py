"""baerase-mlops: a backdoor gate for an MLflow Model Registry (BAERASE, Liu et al. 2022)."""

__version__ = "0.1.0"
