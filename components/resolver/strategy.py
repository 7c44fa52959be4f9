"""Baseline resolution: the latest blessed model that is not the candidate itself.

TFX's LatestBlessedModelStrategy returns the candidate as its own baseline when a run is
repeated with nothing changed (the cached Trainer output is the model blessed last time). That
changes the Evaluator's inputs, so it re-runs, compares the model with itself and pushes it
again. Excluding the candidate keeps an unchanged re-run fully cached and makes every
comparison one between two different models.
"""

from __future__ import annotations

from tfx.dsl.components.common import resolver

from components.resolver.spec import (
    BLESSED_PROPERTY,
    CANDIDATE_KEY,
    CURRENT_MODEL_ID_PROPERTY,
    MODEL_BLESSING_KEY,
    MODEL_KEY,
)


def latest_blessed_other_model(models, blessings, candidates):
    """Pick the newest blessed model whose id is not a candidate's; return (model, blessing) or None."""
    excluded = {c.id for c in candidates}
    blessed = {
        b.get_int_custom_property(CURRENT_MODEL_ID_PROPERTY): b
        for b in blessings
        if b.get_int_custom_property(BLESSED_PROPERTY) == 1
    }
    for model in sorted(models, key=lambda m: m.id, reverse=True):
        if model.id in blessed and model.id not in excluded:
            return model, blessed[model.id]
    return None


class LatestBlessedOtherModelStrategy(resolver.ResolverStrategy):
    """Resolver strategy with inputs `model`, `model_blessing` (all of them) and `candidate`."""

    def resolve_artifacts(self, store, input_dict):
        found = latest_blessed_other_model(
            input_dict.get(MODEL_KEY, []),
            input_dict.get(MODEL_BLESSING_KEY, []),
            input_dict.get(CANDIDATE_KEY, []),
        )
        model, blessing = found if found else (None, None)
        return {
            MODEL_KEY: [model] if model else [],
            MODEL_BLESSING_KEY: [blessing] if blessing else [],
            CANDIDATE_KEY: list(input_dict.get(CANDIDATE_KEY, [])),
        }
