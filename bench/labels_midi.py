"""Benchmark clips for key and BPM: songs written as MIDI here, rendered with fluidsynth.

Every clip has a known tonic, mode and tempo by construction. The set mixes easy cases with the
hard ones the issue names: progressions that start away from the tonic, half-time and
syncopated grooves, and arrangements with no drums at all.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mido

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
TICKS = 480  # per quarter note
DRUM_CHANNEL = 9
CLIP_SECONDS = 30.0

# Drum patterns on a 16-step bar: (GM note, steps, velocity).
KICK, SNARE, HAT, OPEN_HAT, CLAP, RIDE = 36, 38, 42, 46, 39, 51
GROOVES: dict[str, list[tuple[int, tuple[int, ...], int]]] = {
    "rock": [(KICK, (0, 8), 110), (SNARE, (4, 12), 105), (HAT, (0, 2, 4, 6, 8, 10, 12, 14), 75)],
    # Half-time: the snare lands on beat 3 only, so the bar "feels" half as fast.
    "halftime": [(KICK, (0, 10), 110), (SNARE, (8,), 110), (HAT, (0, 2, 4, 6, 8, 10, 12, 14), 70)],
    "funk": [
        (KICK, (0, 3, 6, 10), 110),
        (SNARE, (4, 12), 105),
        (SNARE, (7, 15), 45),
        (HAT, tuple(range(16)), 60),
    ],
    "fourfloor": [(KICK, (0, 4, 8, 12), 115), (CLAP, (4, 12), 95), (OPEN_HAT, (2, 6, 10, 14), 80)],
    "swingride": [(RIDE, (0, 4, 7, 8, 12, 15), 80), (KICK, (0,), 70), (SNARE, (12,), 60)],
    "none": [],
}


@dataclass(frozen=True)
class ClipSpec:
    name: str
    tonic: int  # pitch class, 0 = C
    mode: str  # "major" | "minor"
    bpm: float
    groove: str
    progression: tuple[int, ...]  # scale degrees (0-based), one chord per bar
    chord_program: int  # General MIDI program of the harmony part
    lead_program: int | None
    bass: bool = True

    @property
    def key(self) -> str:
        return PITCH_NAMES[self.tonic]


# (progression in major, progression in minor); several start away from the tonic.
PROGRESSIONS: list[tuple[tuple[int, ...], tuple[int, ...]]] = [
    ((0, 4, 5, 3), (0, 5, 2, 4)),  # I V vi IV      | i VI III V
    ((5, 3, 0, 4), (5, 6, 0, 0)),  # vi IV I V      | VI VII i i   (starts away)
    ((1, 4, 0, 0), (3, 4, 0, 0)),  # ii V I I       | iv V i i     (starts away)
    ((4, 3, 0, 0), (4, 5, 3, 0)),  # V IV I I       | V VI iv i    (starts on the dominant)
    ((0, 3, 0, 4), (0, 3, 0, 4)),  # I IV I V       | i iv i V
]
TEMPI = (62, 70, 76, 84, 90, 96, 100, 106, 112, 118, 124, 128, 136, 144, 152, 165, 174)
# (groove, chord program, lead program)
ARRANGEMENTS: list[tuple[str, int, int | None]] = [
    ("rock", 29, 30),  # overdriven guitar + distortion lead
    ("halftime", 4, 81),  # e-piano + saw lead
    ("funk", 16, 62),  # organ + synth brass
    ("fourfloor", 90, 80),  # pad + square lead
    ("none", 0, None),  # solo piano
    ("none", 48, 73),  # strings + flute
    ("swingride", 0, 66),  # piano + tenor sax
    ("none", 24, 40),  # nylon guitar + violin
]


def default_specs(count: int = 32, seed: int = 7) -> list[ClipSpec]:
    """A deterministic, varied set: every key in both modes over the first 24 clips.

    Another `seed` shifts keys and tempi and redraws the rest: a held-out set for the rules
    that were set on seed 7.
    """
    rng = random.Random(seed)
    shift = seed - 7
    specs = []
    for i in range(count):
        mode = "major" if i % 2 == 0 else "minor"
        tonic = (i * 7 + (i // 2) * 5 + shift) % 12 if i < 24 else rng.randrange(12)
        groove, chords, lead = ARRANGEMENTS[i % len(ARRANGEMENTS)]
        bpm = float(TEMPI[(i * 5 + shift) % len(TEMPI)])
        if groove == "none" and bpm > 130:
            bpm = float(rng.choice((72, 88, 100, 116)))
        prog_major, prog_minor = PROGRESSIONS[(i // 2 + i) % len(PROGRESSIONS)]
        progression = prog_major if mode == "major" else prog_minor
        specs.append(
            ClipSpec(
                name=f"clip{i:02d}_{PITCH_NAMES[tonic]}{'m' if mode == 'minor' else ''}"
                f"_{int(bpm)}_{groove}",
                tonic=tonic,
                mode=mode,
                bpm=bpm,
                groove=groove,
                progression=progression,
                chord_program=chords,
                lead_program=lead,
                bass=not (groove == "none" and i % 3 == 0),
            )
        )
    return specs


def _scale_pitch(tonic: int, mode: str, degree: int, octave: int, raise_leading: bool) -> int:
    scale = MAJOR if mode == "major" else NATURAL_MINOR
    octave_shift, step = divmod(degree, 7)
    pitch = 12 * (octave + octave_shift) + tonic + scale[step]
    if raise_leading and mode == "minor" and step == 6:
        pitch += 1  # harmonic minor: the dominant chord has a leading tone
    return pitch


def _chord(tonic: int, mode: str, degree: int, octave: int) -> list[int]:
    # In minor, V (degree 4) takes the raised 7th; VII (degree 6) keeps the natural one.
    leading = degree == 4
    return [_scale_pitch(tonic, mode, degree + k, octave, leading) for k in (0, 2, 4)]


def build_midi(spec: ClipSpec, seconds: float = CLIP_SECONDS, seed: int = 0) -> mido.MidiFile:
    rng = random.Random(hash((spec.name, seed)) & 0xFFFF)
    beats = int(seconds * spec.bpm / 60.0) + 4
    bars = beats // 4 + 1
    events: list[tuple[int, mido.Message]] = []

    def note(channel: int, pitch: int, start: int, length: int, velocity: int) -> None:
        on = mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)
        events.append((start, on))
        events.append((start + length, mido.Message("note_off", channel=channel, note=pitch)))

    events.append((0, mido.Message("program_change", channel=0, program=spec.chord_program)))
    if spec.lead_program is not None:
        events.append((0, mido.Message("program_change", channel=1, program=spec.lead_program)))
    events.append((0, mido.Message("program_change", channel=2, program=33)))  # finger bass
    bar_ticks = 4 * TICKS
    step = TICKS // 4
    for bar in range(bars):
        degree = spec.progression[bar % len(spec.progression)]
        start = bar * bar_ticks
        chord = _chord(spec.tonic, spec.mode, degree, 5)
        if spec.groove == "none":
            # Arpeggiated eighths so the harmony still carries the pulse.
            pattern = (chord[0], chord[1], chord[2] + 12, chord[1])
            for k in range(8):
                velocity = 85 if k % 2 == 0 else 70
                note(0, pattern[k % 4], start + k * TICKS // 2, TICKS // 2, velocity)
        else:
            for beat in range(4):
                for pitch in chord:
                    note(0, pitch, start + beat * TICKS, TICKS - 20, 62 if beat % 2 else 72)
        if spec.bass:
            root = _chord(spec.tonic, spec.mode, degree, 3)[0]
            fifth = _chord(spec.tonic, spec.mode, degree, 3)[2]
            for beat, pitch in enumerate((root, root, fifth, root)):
                note(2, pitch, start + beat * TICKS, TICKS - 30, 95)
        if spec.lead_program is not None and bar % 2 == 1:
            t = start
            while t < start + bar_ticks:
                length = rng.choice((TICKS // 2, TICKS, TICKS // 2))
                idx = rng.choice((0, 2, 4, 1, 0, 2))  # chord tones, mostly
                leading = idx == 2 and degree == 4
                pitch = _scale_pitch(spec.tonic, spec.mode, degree + idx, 6, leading)
                note(1, pitch, t, length - 10, 80)
                t += length
        for drum, steps, velocity in GROOVES[spec.groove]:
            for s in steps:
                v = max(1, min(127, velocity + rng.randint(-6, 6)))
                note(DRUM_CHANNEL, drum, start + s * step, step, v)
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(spec.bpm), time=0))
    last = 0
    for at, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(message.copy(time=at - last))
        last = at
    return midi


def soundfont() -> Path:
    for candidate in SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise RuntimeError(
        "no General MIDI soundfont found; install fluid-soundfont-gm "
        "(scripts/setup.sh does with MUSICGEN_FT_BENCH=1)"
    )


def render(spec: ClipSpec, out_dir: Path, sample_rate: int = 44100) -> Path:
    """Render `spec` to `out_dir/NAME.wav` (cached), trimmed to CLIP_SECONDS."""
    import numpy as np
    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / f"{spec.name}.wav"
    if wav.exists():
        return wav
    if shutil.which("fluidsynth") is None:
        raise RuntimeError("fluidsynth is not installed (apt-get install fluidsynth)")
    mid = out_dir / f"{spec.name}.mid"
    build_midi(spec).save(mid)
    raw = out_dir / f"{spec.name}.raw.wav"
    cmd = [
        "fluidsynth",
        "-ni",
        "-g",
        "0.6",
        "-r",
        str(sample_rate),
        "-F",
        str(raw),
        str(soundfont()),
        str(mid),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not raw.exists():
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"fluidsynth failed on {mid} (exit {proc.returncode}): {tail}")
    audio, sr = sf.read(raw, dtype="float32", always_2d=True)
    audio = audio[: int(CLIP_SECONDS * sr)]
    peak = float(np.abs(audio).max()) or 1.0
    sf.write(wav, audio * (0.9 / peak), sr, subtype="PCM_16")
    raw.unlink()
    return wav
