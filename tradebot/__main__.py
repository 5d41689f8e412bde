import sys

from tradebot.cli import main

sys.exit(main())
