import sys

from ufm.cli.main import main

sys.exit(main())
