"""Toy stream handler: logs every record it gets; fails once each record whose NewImage has `fail`."""
import json
import os


def handler(event, context):
    folder = os.environ["OUT_DIR"]
    failures = []
    for record in event["Records"]:
        seq = record["dynamodb"]["SequenceNumber"]
        seen = os.path.join(folder, f"seen-{seq}")
        with open(os.path.join(folder, "log.jsonl"), "a") as fh:
            fh.write(json.dumps({**record, "batchSize": len(event["Records"])}) + "\n")
        if "fail" in record["dynamodb"].get("NewImage", {}) and not os.path.exists(seen):
            open(seen, "w").close()
            failures.append({"itemIdentifier": seq})
    return {"batchItemFailures": failures}
