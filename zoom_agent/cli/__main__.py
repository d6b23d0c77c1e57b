"""``python -m zoom_agent.cli`` (what ``torchrun -m zoom_agent.cli train ...`` runs)."""

from zoom_agent.cli import main

raise SystemExit(main())
