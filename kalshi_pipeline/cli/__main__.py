"""``python -m kalshi_pipeline.cli``: the ``kalshi-pipeline`` command."""

import sys

from kalshi_pipeline.cli import main

sys.exit(main())
