"""The Azure backend: Azure ML Studio web services (Resource Manager and classic),
retrained through their Batch Execution Service, with models in blob storage."""
