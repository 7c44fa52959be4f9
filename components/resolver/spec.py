"""Input/output keys of the baseline resolver and the ModelBlessing properties it reads."""

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
CANDIDATE_KEY = "candidate"
# Custom properties the Evaluator sets on ModelBlessing artifacts.
BLESSED_PROPERTY = "blessed"
CURRENT_MODEL_ID_PROPERTY = "current_model_id"
