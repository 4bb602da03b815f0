"""The image and `cog build` install the same things, one way: scripts/install.sh is the
Dockerfile's install step and the source of cog.yaml's install keys, so a pin changed in the
requirements changes what both install. No image is built here (`make image-test` builds one
and checks it from the inside); these read the files and the script's plan."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = (
    "scripts/install.sh",
    "cog.yaml",
    "Dockerfile",
    "requirements.txt",
    "requirements-nodeps.txt",
    "requirements-lock.txt",
)
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#'\"]+)")


@dataclass(frozen=True)
class Install:
    """What an image build installs: Debian packages, a requirements file, then commands."""

    system_packages: tuple[str, ...]
    requirements: str
    run: tuple[str, ...]

    def pins(self, root: Path) -> set[str]:
        """Every `name==version` installed: the requirements file's, then the commands'."""
        pins = requirement_pins(root / self.requirements)
        for command in self.run:
            pins |= {t.lower() for t in shlex.split(command) if PIN.fullmatch(t)}
        return pins


def requirement_pins(path: Path) -> set[str]:
    pins = set()
    for line in path.read_text().splitlines():
        match = PIN.match(line.split("#", 1)[0].strip())
        if match:
            pins.add(f"{match[1]}=={match[2]}".lower())
    return pins


def plan(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts" / "install.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def image_install(root: Path) -> Install:
    """The steps the Dockerfile runs (scripts/install.sh --plan)."""
    done = plan(root, "--plan")
    assert done.returncode == 0, done.stderr
    steps: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("\t")
        steps.setdefault(key, []).append(value)
    return Install(
        system_packages=tuple(steps["system_packages"][0].split()),
        requirements=steps["python_requirements"][0],
        run=tuple(steps["run"]),
    )


def cog_install(root: Path) -> Install:
    """The steps `cog build` runs, from cog.yaml."""
    build = yaml.safe_load((root / "cog.yaml").read_text())["build"]
    return Install(
        system_packages=tuple(build.get("system_packages") or ()),
        requirements=build.get("python_requirements") or "",
        run=tuple(r if isinstance(r, str) else r["command"] for r in build.get("run") or ()),
    )


def copy_tree(tmp: Path) -> Path:
    for name in FILES:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp / name)
    return tmp


def bump_first_pin(path: Path) -> tuple[str, str]:
    """Change the first pin of a requirements file; return (old pin, new pin)."""
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if match:
            old = f"{match[1]}=={match[2]}".lower()
            new = f"{match[1]}==99.0".lower()
            lines[i] = line.replace(match[0], f"{match[1]}==99.0", 1)
            path.write_text("".join(lines))
            return old, new
    raise AssertionError(f"no pin in {path}")


def test_cog_yaml_declares_the_steps_the_image_runs() -> None:
    image, cog = image_install(ROOT), cog_install(ROOT)
    hint = "cog.yaml is out of date: run `bash scripts/install.sh --write-cog-yaml`"
    assert cog == image, hint
    pins = image.pins(ROOT)
    # requirements.txt, requirements-nodeps.txt and the AudioCraft sdist, all three.
    assert requirement_pins(ROOT / "requirements.txt") < pins
    assert requirement_pins(ROOT / "requirements-nodeps.txt") < pins
    assert any(p.startswith("audiocraft==") for p in pins)
    assert cog.pins(ROOT) == pins


def test_cog_yaml_is_exactly_what_the_script_writes(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    done = plan(root, "--write-cog-yaml")
    assert done.returncode == 0, done.stderr
    assert (root / "cog.yaml").read_text() == (ROOT / "cog.yaml").read_text()
    config = yaml.safe_load((root / "cog.yaml").read_text())
    assert config["predict"] == "predict.py:Predictor"
    assert config["train"] == "train.py:train"
    assert config["build"]["gpu"] is True


def test_a_requirements_pin_change_reaches_the_image_and_cog_yaml(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    before = image_install(root).pins(root)
    old, new = bump_first_pin(root / "requirements.txt")
    image, cog = image_install(root), cog_install(root)
    assert old in before
    for install in (image, cog):
        assert new in install.pins(root) and old not in install.pins(root)
    assert image == cog


def test_a_nodeps_pin_change_reaches_the_image_and_is_caught_until_cog_yaml_is_rewritten(
    tmp_path: Path,
) -> None:
    root = copy_tree(tmp_path)
    old, new = bump_first_pin(root / "requirements-nodeps.txt")
    image = image_install(root)
    assert new in image.pins(root) and old not in image.pins(root)
    # cog.yaml spells its run: lines out (Cog copies no file in before them): the comparison
    # of test_cog_yaml_declares_the_steps_the_image_runs now fails...
    stale = cog_install(root)
    assert stale != image and old in stale.pins(root)
    # ...until the script rewrites them.
    done = plan(root, "--write-cog-yaml")
    assert done.returncode == 0, done.stderr
    cog = cog_install(root)
    assert cog == image and new in cog.pins(root)


def test_the_dockerfile_installs_through_the_shared_script_only() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.replace("\\\n", " ").splitlines() if ln and ln[0] != "#"]
    instructions = [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]
    assert instructions[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert instructions[1] == ("FROM", "${BASE_IMAGE}")
    runs = [arg for kind, arg in instructions if kind == "RUN"]
    installs = [i for i, arg in enumerate(runs) if "bash scripts/install.sh --install" in arg]
    assert len(installs) == 1, runs
    for arg in runs:
        assert "apt-get install" not in arg and "-r requirements" not in arg, arg
        assert not PIN.search(arg), f"a pin outside the requirements files: {arg}"
    # install.sh reads only what was copied in before it runs.
    copied = " ".join(
        arg for kind, arg in instructions[: instructions.index(("RUN", runs[installs[0]]))]
    )
    for name in ("requirements.txt", "requirements-nodeps.txt", "requirements-lock.txt"):
        assert name in copied
    assert "scripts/install.sh" in copied
    final = {kind: arg for kind, arg in instructions}
    assert final["WORKDIR"] == "/src"
    assert final["USER"] not in ("root", "0")
    assert final["VOLUME"] == "/data"


def test_setup_sh_installs_the_same_requirements_and_audiocraft() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    version = re.search(r"^AUDIOCRAFT_VERSION=(\S+)$", setup, re.M)
    assert version, "scripts/setup.sh no longer sets AUDIOCRAFT_VERSION"
    assert f"audiocraft=={version[1]}" in image_install(ROOT).pins(ROOT)
    for name in ("requirements.txt", "requirements-nodeps.txt", "requirements-lock.txt"):
        assert name in setup


@pytest.mark.parametrize(
    ("args", "missing", "message"),
    [
        (("--bogus",), None, "unknown option '--bogus'"),
        ((), None, "use --install (inside an image build), --plan or --write-cog-yaml"),
        (("--plan",), "requirements-nodeps.txt", "requirements-nodeps.txt is missing"),
    ],
)
def test_bad_input_gets_one_clear_line(
    tmp_path: Path, args: tuple[str, ...], missing: str | None, message: str
) -> None:
    root = copy_tree(tmp_path)
    if missing:
        (root / missing).unlink()
    done = plan(root, *args)
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
