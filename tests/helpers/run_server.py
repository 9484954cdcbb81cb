"""Start ``mhsafety serve`` with the test-only "guardfake" kind registered (a subprocess).

Run as ``python -m tests.helpers.run_server serve ...`` from the repository root.
"""

if __name__ == "__main__":  # guarded: --workers spawns processes that import this module
    from tests.helpers import fakeclf

    fakeclf.register()

    from mhsafety.cli import main

    main()
