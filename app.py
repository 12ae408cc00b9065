"""The Gradio app (issue 4) is not built yet.

Until it is, the model is used from the command line:
    python train.py --help
    python -m msa evaluate --checkpoint runs/.../best --labels ../shared/data/mosi/label.csv --split test
"""

import sys

if __name__ == "__main__":
    print(__doc__.strip(), file=sys.stderr)
    sys.exit(1)
