"""``python -m mhsafety`` (also what ``accelerate launch -m mhsafety ...`` runs)."""

from .cli import main

main()
