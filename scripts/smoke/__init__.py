"""`make smoke`: the fixed end-to-end battery against a deployed tunnel (python -m scripts.smoke).

__main__.py  command line, the origin and ttf subprocesses, exit status
battery.py   the checks and the order they run in
origin.py    the local service the tunnel forwards to (stdlib)
client.py    a raw-target HTTP client (stdlib)
report.py    the one table (rich on a terminal, plain otherwise)
"""
