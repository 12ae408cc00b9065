"""Training: the two-stage loop with selection on validation and exact resume (`loop`), what
``train.py`` runs (`experiment`), and one run over several processes under torchrun (`distributed`)."""
