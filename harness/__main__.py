"""`python -m harness ...` (and `torchrun ... -m harness run PLAN`): the same as the `harness` command."""

import sys

from harness.cli.main import main

sys.exit(main())
