"""Prompts in words, parsed through a run's ConceptSpec: "small blue circle" -> the cell (blue, small).

Word order is free and case is ignored. Value names of more than one word ("not_smiling", "no hat") match as
phrases, longest first, with spaces, underscores or hyphens between their words, so "not smiling" is never
read as "smiling". Words that name a fixed property of the data (the shape of a colour x size run) are
accepted and ignored. Every concept must be named exactly once.
"""

from __future__ import annotations

import re

from .concepts import ConceptSpec
from .errors import UserError


def words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s_,\-]+", str(text).lower()) if w]


def parse_prompt(spec: ConceptSpec, text: str, fixed_words=()) -> tuple[int, ...]:
    """The cell a prompt names. fixed_words: accepted words that name no concept (e.g. the data's shape)."""
    phrases = sorted(((tuple(words(value)), concept.name, i) for concept in spec.concepts
                      for i, value in enumerate(concept.values)), key=lambda p: -len(p[0]))
    fixed = {w for f in fixed_words for w in words(f)}
    tokens, chosen, at = words(text), {}, 0
    if not tokens:
        raise UserError(f"PROMPT: empty; name one value per concept, e.g. {example(spec)!r}")
    while at < len(tokens):
        match = next(((p, c, i) for p, c, i in phrases if tuple(tokens[at:at + len(p)]) == p), None)
        if match is None:
            if tokens[at] in fixed:
                at += 1
                continue
            known = "; ".join(f"{c.name}: {', '.join(v.replace('_', ' ') for v in c.values)}" for c in spec.concepts)
            extra = f"; also accepted: {', '.join(sorted(fixed))}" if fixed else ""
            raise UserError(f"PROMPT: unknown word {tokens[at]!r}; known words — {known}{extra}")
        phrase, concept, value = match
        if concept in chosen and chosen[concept] != value:
            names = spec.concept(concept).values
            raise UserError(f"PROMPT: two values of {concept!r} ({names[chosen[concept]]!r} and {names[value]!r}); "
                            "name one")
        chosen[concept] = value
        at += len(phrase)
    missing = [c for c in spec.names if c not in chosen]
    if missing:
        raise UserError(f"PROMPT: names no value of {missing}; allowed: " +
                        "; ".join(f"{c}: {list(spec.concept(c).values)}" for c in missing))
    return tuple(chosen[c] for c in spec.names)


def example(spec: ConceptSpec) -> str:
    return " ".join(c.values[-1].replace("_", " ") for c in spec.concepts)


def parse_vector(spec: ConceptSpec, text: str):
    """--vector 0.05,0.05,0.95,0.3: a raw concept vector, checked against the spec's width and bounds."""
    import torch

    try:
        values = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--vector: got {text!r}; allowed: {spec.dim} comma-separated numbers "
                        f"(layout: {layout(spec)})") from None
    if len(values) != spec.dim:
        raise UserError(f"--vector: got {len(values)} numbers; allowed: {spec.dim} (layout: {layout(spec)})")
    vector = torch.tensor(values)
    spec.check_bounds(vector[None], what="--vector")
    return vector


def layout(spec: ConceptSpec) -> str:
    return ", ".join(f"{c.name} x{c.width}" for c in spec.concepts)
