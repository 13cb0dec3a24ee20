import sys

from glocal.cli import main

sys.exit(main())
