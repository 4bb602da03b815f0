"""Constants more than one module depends on: written once, here.

Change one of these and every stage, door and test that uses it follows; nothing else in the
project spells these values out.
"""

from __future__ import annotations

import getpass
import os

# Length of a prepared chunk and of a training segment: preparation cuts the audio into chunks
# of this length and the solver trains on segments of the same length.
CHUNK_SECONDS = 30.0

# What a fine-tune produces and what predict.py / the server load.
TAR_NAME = "trained_model.tar"

# Audio files a dataset may hold (matched on the lower-cased suffix).
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".mp3",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".m4a",
        ".aac",
        ".mp4",
        ".aif",
        ".aiff",
        ".aifc",
    }
)

# A training's or prediction's statuses after which nothing changes (Replicate's words).
TERMINAL_STATUSES = ("succeeded", "failed", "canceled")

# AudioCraft's config interpolates ${oc.env:USER}; containers often have no passwd entry.
USER_FALLBACK = "musicgen-ft"

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def parse_bool(text: str) -> bool | None:
    """`true/1/yes/on` → True, `false/0/no/off` → False (any case), anything else → None."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def env_flag(name: str) -> bool:
    """Whether the environment variable `name` is set to a true value."""
    return parse_bool(os.environ.get(name, "")) is True


def user_name() -> str:
    """The user AudioCraft's config names: $USER, the passwd entry, or a fixed fallback."""
    if os.environ.get("USER"):
        return os.environ["USER"]
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return USER_FALLBACK
