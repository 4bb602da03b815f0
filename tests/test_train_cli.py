"""Bad input to train.py: one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from musicgen_ft.train_cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def debug_job_args(dataset: str, output_dir: Path) -> list[str]:
    """A `debug` job that needs no Demucs or Essentia models."""
    return [
        "--dataset_path", dataset, "--model_version", "debug", "--drop_vocals", "false",
        "--auto_labeling", "false", "--output_dir", str(output_dir),
    ]  # fmt: skip


def test_large_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(
        ["--dataset_path", "x.zip", "--model_version", "large", "--output_dir", str(tmp_path)],
        capsys,
    )
    assert code == 2
    assert "model_version" in err and "not trainable" in err


def test_unknown_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(
        ["--dataset_path", "x.zip", "--model_version", "huge", "--output_dir", str(tmp_path)],
        capsys,
    )
    assert code == 2 and "unknown model_version='huge'" in err


def test_bad_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(
        ["--dataset_path", "x.zip", "--epochs", "many", "--output_dir", str(tmp_path)], capsys
    )
    assert code == 2 and "epochs='many' is not an integer" in err


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(
        debug_job_args(str(tmp_path / "nope.zip"), tmp_path / "out"),
        capsys,
    )
    assert code == 1
    assert "nope.zip" in err and "does not exist" in err
    assert (tmp_path / "out" / "job.log").is_file()  # the failure keeps its log


def test_empty_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.md", "no audio here")
    code, err = run(
        debug_job_args(str(archive), tmp_path / "out"),
        capsys,
    )
    assert code == 1
    assert "no audio" in err


def test_real_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("notes.txt", "nothing")
    (tmp_path / "d.zip").write_bytes(buffer.getvalue())
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--dataset_path",
            str(tmp_path / "d.zip"),
            "--model_version",
            "large",
            "--output_dir",
            str(tmp_path / "o"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: model_version")
