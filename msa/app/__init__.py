"""The app around the model: the request pipeline without a UI (`service`, `uploads`, `private`:
each page's own fine-tuned checkpoints), the figures (`plots`), and the Gradio page (`page`,
`handlers`, `texts`; the tabs `lab_tab` and `train_tab`, with `train_tab_clips`). ``app.py`` starts it.

Gradio and huggingface_hub read these at import time; every import of the page passes here
first, so nothing leaves the machine whoever imports it (app.py, the tests, the benchmarks).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
