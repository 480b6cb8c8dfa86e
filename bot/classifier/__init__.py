"""The learned classifier: compiled from the rule files (keywords + labelled examples).

``features`` turns text into numbers, ``embedding`` runs multilingual-e5-small (when the
CPU can) with a cache, ``model`` holds the fitted arrays and predicts with numpy alone,
``training`` fits and cross-validates with scikit-learn, ``engine`` is the async shell the
bot calls. The decision itself (probabilities + rails -> action) is pure: bot/core/triage.py.
"""
