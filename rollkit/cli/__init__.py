"""`rollkit VERB`: the command line. `common` holds the flags every verb shares and the wrapper that
turns errors into exit codes.

May import: every part of rollkit; nothing imports it but the scripts and `python -m rollkit`.
"""
