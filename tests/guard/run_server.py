"""Start ``mhsafety serve`` with the test-only "guardfake" kind registered (a subprocess)."""

import sys
from pathlib import Path

if __name__ == "__main__":  # guarded: --workers spawns processes that import this module
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    import fakeclf

    fakeclf.register()

    from mhsafety.cli import main

    main()
