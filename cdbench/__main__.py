import sys

from cdbench.cli import main

sys.exit(main())
