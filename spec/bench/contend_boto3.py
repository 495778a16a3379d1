#!/usr/bin/env python3
"""One worker of the naive optimistic-locking loop of the usual boto3 examples, against one
hot item: read (consistent), conditional put of the whole item on the version read, and on
ConditionalCheckFailedException read again and retry at once. Writes a JSON summary.

  contend_boto3.py ENDPOINT TABLE KEY START_EPOCH_MS SECONDS OUTFILE
"""
import json
import os
import sys
import time

import boto3
from botocore.exceptions import ClientError


def main():
    endpoint, table_name, key = sys.argv[1], sys.argv[2], sys.argv[3]
    start_ms, seconds, outfile = float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    table = boto3.resource(
        "dynamodb", endpoint_url=endpoint, region_name=os.environ["DDB_TEST_REGION"],
        aws_access_key_id=os.environ["DDB_TEST_ACCESS_KEY"],
        aws_secret_access_key=os.environ["DDB_TEST_SECRET_KEY"]).Table(table_name)
    table.get_item(Key={"pk": key}, ConsistentRead=True)  # connection open, server warm
    wait = start_ms / 1000 - time.time()
    if wait > 0:
        time.sleep(wait)
    deadline = time.monotonic() + seconds
    lat, ok, requests, conflicts = [], 0, 0, 0
    c0 = time.process_time()
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        while True:
            requests += 1
            item = table.get_item(Key={"pk": key}, ConsistentRead=True).get("Item")
            if item is None:
                item, cond, values = {"pk": key, "n": 0, "version": 0}, \
                    "attribute_not_exists(pk)", None
            else:
                cond, values = "version = :v", {":v": item["version"]}
            item["n"] += 1
            item["version"] += 1
            args = {"Item": item, "ConditionExpression": cond}
            if values:
                args["ExpressionAttributeValues"] = values
            requests += 1
            try:
                table.put_item(**args)
                break
            except ClientError as e:
                if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                conflicts += 1
        ok += 1
        lat.append((time.monotonic() - t0) * 1000)
    with open(outfile, "w") as f:
        json.dump({"successes": ok, "failures": 0, "requests": requests, "conflicts": conflicts,
                   "latencies_ms": lat, "cpu_s": time.process_time() - c0}, f)


if __name__ == "__main__":
    main()
