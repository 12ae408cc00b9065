"""Training: the two-stage loop with selection on validation and exact resume (`loop`), and
what ``train.py`` runs (`experiment`)."""
