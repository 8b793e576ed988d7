"""The Fleet desktop launcher: a Tk window onto one fleet home. A client of
the store contract and of the CLI's own functions (fleet/cli/); it writes no
SQL and keeps no state the fleet does not have. Entry: launcher/launcher.py.
"""
