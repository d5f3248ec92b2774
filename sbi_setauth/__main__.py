"""Run the `sbi-setauth` command as `python -m sbi_setauth`."""

import sys

from sbi_setauth.cli import main

if __name__ == "__main__":
    sys.exit(main())
