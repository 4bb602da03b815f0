"""Benchmark clips for key and BPM: songs written as MIDI here, rendered with fluidsynth.

Every clip has a known tonic, mode and tempo by construction. The set mixes easy cases with the
hard ones the issue names: progressions that start away from the tonic, half-time and
syncopated grooves, and arrangements with no drums at all. `round2_specs` (issue 13, round 2)
adds drum-less pieces in several textures over 56-200 BPM, 3-3-2 figures, fast waltzes and trap.
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
    # Development extras (`extra_specs`): meter and bass figure. The defaults are the 4/4 clips
    # of `default_specs`, unchanged.
    meter: str = "4/4"  # "4/4" | "3/4" | "6/8" (6/8: `bpm` counts dotted quarters)
    bass_beats: tuple[int, ...] | None = None  # beats of the bar the bass plays; None: all
    swing: bool = False  # eighths played long-short (2:1)
    # Harmony part of drum-less bars (seed 11 on): "arpeggio" (eighths, the default), "block"
    # (a chord every beat), "half" (a chord every two beats), "332" (chords on eighths 0, 3, 6).
    texture: str = "arpeggio"

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


# Development extras: 3/4 and 6/8 grooves on a 12-step bar of sixteenths (6/8: an eighth is two
# steps, the dotted-quarter beats are steps 0 and 6), a shuffle (16 steps, eighths swung).
EXTRA_GROOVES: dict[str, list[tuple[int, tuple[int, ...], int]]] = {
    "waltz": [(KICK, (0,), 105), (SNARE, (4, 8), 70), (HAT, (0, 2, 4, 6, 8, 10), 60)],
    "sixeight": [(KICK, (0,), 110), (SNARE, (6,), 95), (HAT, (0, 2, 4, 6, 8, 10), 65)],
    "shuffle": [(KICK, (0, 8), 105), (SNARE, (4, 12), 100), (HAT, (0, 2, 4, 6, 8, 10, 12, 14), 70)],
    # Added after evaluation run 1 (bench/README.md): a 3-3-2 kick and sixteenth-hat half time.
    "tresillo": [
        (KICK, (0, 6, 12), 110),
        (SNARE, (4, 12), 90),
        (HAT, (0, 2, 4, 6, 8, 10, 12, 14), 60),
    ],
    "halftime16": [(KICK, (0, 7, 10), 110), (CLAP, (8,), 110), (HAT, tuple(range(16)), 62)],
    # Added in round 2 (seed 11): trap-style half time with eighth hats and a syncopated kick.
    "trap8": [(KICK, (0, 3, 11), 112), (CLAP, (8,), 110), (HAT, (0, 2, 4, 6, 8, 10, 12, 14), 66)],
}
# (groove, meter, chord program, lead program, bass beats)
EXTRA_ARRANGEMENTS: list[tuple[str, str, int, int | None, tuple[int, ...] | None]] = [
    ("waltz", "3/4", 0, 71, (0,)),  # piano + clarinet, bass on 1
    ("none", "3/4", 48, None, (0,)),  # strings, drum-less waltz
    ("sixeight", "6/8", 25, 73, (0, 1)),  # steel guitar + flute, bass on both dotted beats
    ("none", "6/8", 0, None, (0,)),  # piano arpeggios in 6/8
    ("shuffle", "4/4", 0, 66, None),  # swung eighths, piano + sax
    ("rock", "4/4", 29, None, (0, 2)),  # bass on beats 1 and 3
    ("halftime", "4/4", 4, 81, (0, 2)),  # half-time with bass on 1 and 3
    ("none", "4/4", 24, 40, (0, 2)),  # drum-less, bass on 1 and 3
]
# Added after evaluation run 1; drawn by `extra_specs` from seed 10 on.
LATE_ARRANGEMENTS: list[tuple[str, str, int, int | None, tuple[int, ...] | None]] = [
    ("tresillo", "4/4", 16, None, (0, 2)),  # organ, bass on 1 and 3 under a 3-3-2 kick
    ("halftime16", "4/4", 90, 80, (0,)),  # pad + lead, sixteenth hats, clap on 3
]


# Round 2 (after the first round's evaluation runs 101-103 showed these families failing):
# drum-less pieces over a wide range of tempi and textures, 3-3-2 figures, fast waltzes, trap.
# (groove, meter, chord program, lead program, bass beats, texture, tempo range)
ROUND2_ARRANGEMENTS: list[
    tuple[str, str, int, int | None, tuple[int, ...] | None, str, tuple[int, int]]
] = [
    ("none", "4/4", 45, None, (0, 2), "arpeggio", (56, 180)),  # pizzicato strings, eighths
    ("none", "4/4", 19, 52, (0, 2), "half", (56, 140)),  # organ chords on 1 and 3, choir
    ("none", "4/4", 0, 73, None, "block", (56, 180)),  # piano chords on every beat, flute
    ("none", "4/4", 16, None, (0,), "332", (80, 150)),  # drum-less organ on 3-3-2
    ("tresillo", "4/4", 24, None, (0, 2), "332", (90, 160)),  # guitar and kick on 3-3-2
    ("waltz", "3/4", 21, 71, (0,), "arpeggio", (140, 200)),  # a fast waltz with drums
    ("none", "3/4", 48, None, (0,), "block", (120, 200)),  # a fast drum-less waltz
    ("trap8", "4/4", 89, None, (0,), "arpeggio", (130, 180)),  # trap half time, eighth hats
]


def round2_specs(count: int = 40, seed: int = 11) -> list[ClipSpec]:
    """Development clips added in round 2 (`ROUND2_ARRANGEMENTS`), keys and tempi from `seed`."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        mode = "major" if i % 2 == 0 else "minor"
        tonic = rng.randrange(12)
        groove, meter, chords, lead, bass_beats, texture, (lo, hi) = ROUND2_ARRANGEMENTS[
            i % len(ROUND2_ARRANGEMENTS)
        ]
        bpm = float(rng.randrange(lo, hi + 1))
        prog_major, prog_minor = PROGRESSIONS[rng.randrange(len(PROGRESSIONS))]
        specs.append(
            ClipSpec(
                name=f"r2_{i:02d}_{PITCH_NAMES[tonic]}{'m' if mode == 'minor' else ''}"
                f"_{int(bpm)}_{groove}_{texture}_{meter.replace('/', '')}",
                tonic=tonic,
                mode=mode,
                bpm=bpm,
                groove=groove,
                progression=prog_major if mode == "major" else prog_minor,
                chord_program=chords,
                lead_program=lead,
                meter=meter,
                bass_beats=bass_beats,
                texture=texture,
            )
        )
    return specs


def extra_specs(count: int = 32, seed: int = 9) -> list[ClipSpec]:
    """Development clips beyond `default_specs`: 3/4, 6/8, shuffle and bass on beats 1 and 3;
    from seed 10 on also a 3-3-2 kick and sixteenth-hat half time (`LATE_ARRANGEMENTS`).

    Tempi: 60-176 BPM (quarters; 6/8 counts dotted quarters, 46-100).
    """
    rng = random.Random(seed)
    arrangements = EXTRA_ARRANGEMENTS + (LATE_ARRANGEMENTS if seed >= 10 else [])
    specs = []
    for i in range(count):
        mode = "major" if i % 2 == 0 else "minor"
        tonic = rng.randrange(12)
        groove, meter, chords, lead, bass_beats = arrangements[i % len(arrangements)]
        bpm = float(rng.randrange(46, 101) if meter == "6/8" else rng.randrange(60, 177))
        if groove == "halftime16":
            bpm = float(rng.randrange(120, 177))
        prog_major, prog_minor = PROGRESSIONS[rng.randrange(len(PROGRESSIONS))]
        specs.append(
            ClipSpec(
                name=f"extra{i:02d}_{PITCH_NAMES[tonic]}{'m' if mode == 'minor' else ''}"
                f"_{int(bpm)}_{groove}_{meter.replace('/', '')}",
                tonic=tonic,
                mode=mode,
                bpm=bpm,
                groove=groove,
                progression=prog_major if mode == "major" else prog_minor,
                chord_program=chords,
                lead_program=lead,
                meter=meter,
                bass_beats=bass_beats,
                swing=groove == "shuffle",
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


def _to_midi(events: list[tuple[int, mido.Message]], quarter_bpm: float) -> mido.MidiFile:
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(quarter_bpm), time=0))
    last = 0
    for at, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(message.copy(time=at - last))
        last = at
    return midi


def _build_extra_midi(spec: ClipSpec, seconds: float, seed: int) -> mido.MidiFile:
    """The development extras: 3/4, 6/8, swing, bass on chosen beats."""
    rng = random.Random(hash((spec.name, seed)) & 0xFFFF)
    step = TICKS // 4  # a sixteenth
    if spec.meter == "6/8":
        quarter_bpm = spec.bpm * 1.5
        beats, beat_ticks = 2, 6 * step  # dotted quarters
    else:
        quarter_bpm = spec.bpm
        beats, beat_ticks = (3 if spec.meter == "3/4" else 4), TICKS
    bar_ticks = beats * beat_ticks
    bars = int(seconds * quarter_bpm / 60.0 * TICKS / bar_ticks) + 2
    events: list[tuple[int, mido.Message]] = []

    def swung(at: int) -> int:
        # Swing: the second eighth of each beat comes a triplet eighth late (2:1).
        if spec.swing and at % TICKS == TICKS // 2:
            return at + TICKS // 6
        return at

    def note(channel: int, pitch: int, start: int, length: int, velocity: int) -> None:
        start = swung(start)
        on = mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)
        events.append((start, on))
        events.append((start + length, mido.Message("note_off", channel=channel, note=pitch)))

    events.append((0, mido.Message("program_change", channel=0, program=spec.chord_program)))
    if spec.lead_program is not None:
        events.append((0, mido.Message("program_change", channel=1, program=spec.lead_program)))
    events.append((0, mido.Message("program_change", channel=2, program=33)))
    grooves = {**GROOVES, **EXTRA_GROOVES}
    eighth = TICKS // 2
    for bar in range(bars):
        degree = spec.progression[bar % len(spec.progression)]
        start = bar * bar_ticks
        chord = _chord(spec.tonic, spec.mode, degree, 5)
        if spec.texture == "block":
            for beat in range(beats):
                for pitch in chord:
                    note(0, pitch, start + beat * beat_ticks, beat_ticks - 40, 74 if beat else 84)
        elif spec.texture == "half":
            for beat in range(0, beats, 2):
                for pitch in chord:
                    note(0, pitch, start + beat * beat_ticks, 2 * beat_ticks - 40, 76)
        elif spec.texture == "332":
            for k in (0, 3, 6):
                for pitch in chord:
                    note(0, pitch, start + k * eighth, 2 * eighth, 84 if k == 0 else 76)
        elif spec.groove == "none" or spec.meter == "6/8":
            pattern = (chord[0], chord[1], chord[2], chord[2] + 12, chord[1], chord[2])
            for k in range(bar_ticks // eighth):
                accent = (k * eighth) % beat_ticks == 0
                note(0, pattern[k % 6], start + k * eighth, eighth, 84 if accent else 66)
        elif spec.meter == "3/4":
            note(0, chord[0] - 12, start, TICKS - 20, 74)  # oom
            for beat in (1, 2):  # pah pah
                for pitch in chord:
                    note(0, pitch, start + beat * TICKS, TICKS - 40, 60)
        else:
            for beat in range(beats):
                for pitch in chord:
                    note(0, pitch, start + beat * TICKS, TICKS - 20, 62 if beat % 2 else 72)
        if spec.bass:
            root = _chord(spec.tonic, spec.mode, degree, 3)[0]
            fifth = _chord(spec.tonic, spec.mode, degree, 3)[2]
            for beat in spec.bass_beats if spec.bass_beats is not None else range(beats):
                pitch = fifth if beat == beats - 2 and beats == 4 else root
                note(2, pitch, start + beat * beat_ticks, beat_ticks - 30, 95)
        if spec.lead_program is not None and bar % 2 == 1:
            t = start
            while t < start + bar_ticks:
                length = rng.choice((eighth, TICKS, eighth))
                idx = rng.choice((0, 2, 4, 1, 0, 2))
                pitch = _scale_pitch(
                    spec.tonic, spec.mode, degree + idx, 6, idx == 2 and degree == 4
                )
                note(1, pitch, t, min(length, start + bar_ticks - t) - 10, 80)
                t += length
        for drum, steps, velocity in grooves[spec.groove]:
            for s in steps:
                v = max(1, min(127, velocity + rng.randint(-6, 6)))
                note(DRUM_CHANNEL, drum, start + s * step, step, v)
    return _to_midi(events, quarter_bpm)


def build_midi(spec: ClipSpec, seconds: float = CLIP_SECONDS, seed: int = 0) -> mido.MidiFile:
    if (
        spec.meter != "4/4"
        or spec.bass_beats is not None
        or spec.swing
        or spec.texture != "arpeggio"
    ):
        return _build_extra_midi(spec, seconds, seed)
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
    return _to_midi(events, spec.bpm)


def soundfont() -> Path:
    for candidate in SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise RuntimeError(
        "no General MIDI soundfont found; install fluid-soundfont-gm "
        "(scripts/setup.sh does with MUSICGEN_FT_BENCH=1)"
    )


def render_midi(mid: Path, wav: Path, seconds: float, sample_rate: int = 44100) -> Path:
    """Render the MIDI file `mid` with fluidsynth to `wav`, trimmed to `seconds`, peak -0.9 dB."""
    import numpy as np
    import soundfile as sf

    if shutil.which("fluidsynth") is None:
        raise RuntimeError("fluidsynth is not installed (apt-get install fluidsynth)")
    raw = wav.with_suffix(".raw.wav")
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
    audio = audio[: int(seconds * sr)]
    peak = float(np.abs(audio).max()) or 1.0
    sf.write(wav, audio * (0.9 / peak), sr, subtype="PCM_16")
    raw.unlink()
    return wav


def render(spec: ClipSpec, out_dir: Path, sample_rate: int = 44100) -> Path:
    """Render `spec` to `out_dir/NAME.wav` (cached), trimmed to CLIP_SECONDS."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / f"{spec.name}.wav"
    if wav.exists():
        return wav
    mid = out_dir / f"{spec.name}.mid"
    build_midi(spec).save(mid)
    return render_midi(mid, wav, CLIP_SECONDS, sample_rate)
