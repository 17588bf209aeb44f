"""`make smoke`: the fixed end-to-end battery against a deployed tunnel (python -m scripts.smoke).

__main__.py  command line, the origin and ttf subprocesses, exit status
battery.py   the checks and the order they run in
swap.py      the swap attempt: hand-made agents try to change a big answer after forward checked it
verdict.py   what a check comes to: ok, FAIL, or not checkable locally (and why)
origin.py    the local service the tunnel forwards to (stdlib)
client.py    a raw-target HTTP client (stdlib)
report.py    the one table (rich on a terminal, plain otherwise)
"""
