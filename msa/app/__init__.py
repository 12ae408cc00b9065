"""The app around the model: the request pipeline without a UI (`service`, `uploads`), the
figures (`plots`), and the Gradio page (`page`, `handlers`, `texts`). ``app.py`` starts it.

Gradio and huggingface_hub read these at import time; every import of the page passes here
first, so nothing leaves the machine whoever imports it (app.py, the tests, the benchmarks).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
