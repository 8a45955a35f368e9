"""`python -m mailbridge.cli ...`: the same dispatch as the `mailbridge` console script
(entry.py): `ingest` goes straight to the MTA pipe, everything else to the command tree."""

import sys

from mailbridge.cli import run_cli
from mailbridge.entry import command_of

if command_of(sys.argv[1:]) == "ingest":
    from mailbridge.pipe import main as pipe_main

    sys.exit(pipe_main(sys.argv[1:]))
run_cli()
