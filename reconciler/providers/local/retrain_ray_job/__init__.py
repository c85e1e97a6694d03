"""The job side of the Ray runner: what runs on the cluster, as ``python -m retrain_ray_job``.

Shipped to the cluster by Ray (``runtime_env.py_modules``: this folder, uploaded as the
top-level package ``retrain_ray_job``), so it imports nothing of ``reconciler`` (which the
cluster does not have) and only the standard library. See ``__main__`` for what it does.
"""

CHANNEL_GONE = 75  # exit status (EX_TEMPFAIL): retrain's channel was gone or used; nothing trained
OUTPUT_INVALID = 3  # exit status: the trainer ran but wrote no model or no evaluation
