"""What the Azure backends share, so each stays independent of the others: the one
HTTP module (retries, timeouts, redaction), Resource Manager pacing, the SDK's error
mapping, blob storage and the blob-lease apply lock. Not a backend itself."""
