import sys

from wraft.cli import main

sys.exit(main())
