"""Prompt guidance: the words a fine-tune was trained on, suggested prompts, and a prompt check.

`build_vocabulary(infos)` goes into `trained_model.tar`'s metadata; `predict.py` calls
`check_prompt(prompt, vocabulary)` and warns when the prompt shares no word with it (MusicGen
fine-tunes follow prompts that look like their training descriptions).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Words that carry no musical meaning in a description.
STOPWORDS = frozenset(
    {"a", "an", "and", "at", "bpm", "by", "for", "from", "in", "into", "is", "it", "of", "on"}
    | {"or", "the", "to", "with", "without", "music", "track", "song", "piece"}
)
MAX_TERMS = 200
MAX_PROMPTS = 5


def words(text: str) -> list[str]:
    """Lower-case word tokens, keeping '#' (f#) and digits; stopwords dropped."""
    return [w for w in re.findall(r"[a-z0-9#]+", text.lower()) if w not in STOPWORDS]


def build_vocabulary(infos: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Training vocabulary and suggested prompts from the per-chunk MusicInfo dicts.

    Returns a JSON-ready dict: `terms` (word -> count, most frequent first, at most
    MAX_TERMS), `labels` (genre/mood/instrument/key -> count) and `suggested_prompts` (the most
    common descriptions, at most MAX_PROMPTS).
    """
    terms: Counter[str] = Counter()
    kinds = ("genre", "moods", "instrument", "key")
    labels: dict[str, Counter[str]] = {k: Counter() for k in kinds}
    descriptions: Counter[str] = Counter()
    for info in infos:
        text = str(info.get("description") or "")
        if text:
            descriptions[text] += 1
            terms.update(words(text))
        if info.get("genre"):
            labels["genre"][str(info["genre"])] += 1
        for mood in info.get("moods") or []:
            labels["moods"][str(mood)] += 1
        for name in str(info.get("instrument") or "").split(","):
            if name.strip():
                labels["instrument"][name.strip()] += 1
        if info.get("key"):
            labels["key"][str(info["key"])] += 1
        for field in ("genre", "instrument"):
            terms.update(words(str(info.get(field) or "")))
        for mood in info.get("moods") or []:
            terms.update(words(str(mood)))
    return {
        "terms": dict(terms.most_common(MAX_TERMS)),
        "labels": {k: dict(v.most_common(20)) for k, v in labels.items()},
        "suggested_prompts": suggested_prompts(descriptions),
    }


def suggested_prompts(descriptions: Counter[str]) -> list[str]:
    """The most frequent training descriptions, distinct once the tempo is ignored."""
    out: list[str] = []
    seen: set[str] = set()
    for text, _ in descriptions.most_common():
        shape = re.sub(r"\d+ bpm", "", text.lower())
        if shape not in seen:
            seen.add(shape)
            out.append(text)
        if len(out) >= MAX_PROMPTS:
            break
    return out


@dataclass(frozen=True)
class PromptCheck:
    ok: bool  # the prompt shares at least one word with the training vocabulary
    shared: list[str]
    message: str  # "" when ok


def check_prompt(prompt: str, vocabulary: Mapping[str, Any]) -> PromptCheck:
    """Whether `prompt` shares words with the training vocabulary, and a warning if not."""
    terms = set(vocabulary.get("terms", {}))
    shared = sorted(set(words(prompt)) & terms)
    if shared or not terms:
        return PromptCheck(ok=True, shared=shared, message="")
    examples = "; ".join(f'"{p}"' for p in vocabulary.get("suggested_prompts", [])[:3])
    top = ", ".join(list(vocabulary.get("terms", {}))[:12])
    hint = f" Try prompts like {examples}." if examples else ""
    return PromptCheck(
        ok=False,
        shared=[],
        message=(
            f"the prompt shares no word with the descriptions this model was trained on "
            f"(most common: {top}); the fine-tune may ignore it.{hint}"
        ),
    )
