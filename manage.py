#!/usr/bin/env python
"""Django's command-line utility, which also takes the Orthanc configuration file early.

``--config FILE`` is read here, before Django loads its settings, because the settings (database, storage
area) come from that file; it is exported as ORTHANC_CONFIG so every worker process sees the same file.
"""

import os
import sys


def _take_config_option(argv: list[str]) -> list[str]:
    """Remove ``--config FILE`` from the arguments (any command accepts it) and export it."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" and i + 1 < len(argv):
            os.environ["ORTHANC_CONFIG"] = os.path.abspath(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--config="):
            os.environ["ORTHANC_CONFIG"] = os.path.abspath(arg.split("=", 1)[1])
        else:
            out.append(arg)
        i += 1
    return out


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
    argv = _take_config_option(sys.argv)
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
