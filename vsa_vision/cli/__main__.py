"""``python -m vsa_vision.cli``: the ``vsa-vision`` command."""

import sys

from . import main

sys.exit(main())
