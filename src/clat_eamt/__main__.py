"""``python -m clat_eamt`` is the ``clat-eamt`` command."""

from clat_eamt.cli import main

raise SystemExit(main())
