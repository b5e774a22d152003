"""`python -m dreamrender.web` is `dreamweb`."""
import sys

from .app import main

sys.exit(main())
