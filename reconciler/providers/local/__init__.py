"""The embedded local backend: a real implementation of the provider contract
with web service definitions, a model store and history in a state directory."""
