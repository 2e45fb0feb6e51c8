"""``python3 -m server`` (and the zipapp): the release tool's command line."""

import sys

from server.cli import main

sys.exit(main())
