import sys

from twinlib.cli import main

sys.exit(main())
