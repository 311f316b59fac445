"""``python -m birnn``: the birnn command."""

from .app.cli import main

raise SystemExit(main())
