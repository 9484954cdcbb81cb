"""Start ``mhsafety serve`` with the test-only "guardfake" kind registered (a subprocess)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fakeclf  # noqa: E402

fakeclf.register()

from mhsafety.cli import main  # noqa: E402

main()
