"""``python -m reconciler`` is the same program as the ``retrain`` script."""

import reconciler.cli

if __name__ == "__main__":
    reconciler.cli.entrypoint()
