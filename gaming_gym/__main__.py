import sys

from gaming_gym.cli import main

sys.exit(main())
