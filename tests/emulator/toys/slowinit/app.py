"""Toy whose FIRST init is slow (or fails) and later ones are quick: Lambda must retry init."""
import os
import time

_marker = os.path.join(os.environ["OUT_DIR"], "inits")
with open(_marker, "a") as fh:
    fh.write("x")
with open(_marker) as fh:
    _count = len(fh.read())
if _count == 1:
    if os.environ.get("FIRST_INIT") == "fails":
        raise RuntimeError("first init fails")
    time.sleep(float(os.environ.get("FIRST_INIT_SLEEP", "3")))


def handler(event, context):
    return {"inits": _count}
