"""``python -m medsecure_transforms.cli``: the ``medsecure`` command without the console script."""

import sys

from .main import main

sys.exit(main())
