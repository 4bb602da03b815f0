"""A self-hosted, Replicate-compatible trainings API for the fine-tuner.

`musicgen-ft serve` starts it (see `serving.cli`). The HTTP edge (`app`) validates and shapes;
state lives in SQLite (`store`); one `worker` runs queued trainings, each as a `train.py`
subprocess in its own process group; `webhooks` delivers signed events.
"""
