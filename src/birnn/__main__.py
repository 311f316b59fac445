"""``python -m birnn``: the birnn command."""

from .cli import main

raise SystemExit(main())
