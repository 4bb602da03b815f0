"""Early stopping: the run ends once the held-out loss has not improved for `early_stopping`
epochs, and a re-run of the stopped job trains no further."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from solver_support import UPDATES, train, write_dataset

from training.solver import stale_epochs


def test_stale_epochs_count_from_the_last_real_improvement() -> None:
    assert stale_epochs([]) == 0
    assert stale_epochs([3.0, 2.0, 1.0]) == 0
    assert stale_epochs([3.0, 2.0, 2.5, 2.4]) == 2
    assert stale_epochs([3.0, 2.0, 2.0, 1.99995]) == 2  # below the minimum improvement
    assert stale_epochs([3.0, 2.0, 2.5, 1.5]) == 0


@pytest.mark.slow
def test_a_run_that_stops_improving_stops_early(debug_model_dir: Path, tmp_path: Path) -> None:
    """lr 1e-9: the held-out loss stays where it is, so patience 2 ends a 6-epoch run after 3."""
    egs = write_dataset(tmp_path / "data")
    kw = {"epochs": 6, "lr": 1e-9, "early_stopping": 2}
    run = train(egs, debug_model_dir, tmp_path / "run", **kw)  # type: ignore[arg-type]
    history = json.loads((run.xp / "history.json").read_text())
    assert len(history) == 3 and len(run.steps) == 3 * UPDATES
    assert "early stopping after epoch 3: the held-out ce has not improved for 2" in run.log
    again = train(egs, debug_model_dir, tmp_path / "run", **kw)  # type: ignore[arg-type]
    assert len(again.steps) == 3 * UPDATES  # resumed, and stopped before any new step
