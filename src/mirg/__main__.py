import sys

from mirg.cli import main

sys.exit(main())
