"""The Azure Machine Learning v2 backend: managed online endpoints, command jobs, model versions."""
