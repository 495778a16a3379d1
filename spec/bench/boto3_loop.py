#!/usr/bin/env python3
"""boto3 doing the with_item loop against the fixed-response server: a consistent GetItem,
the change, a conditional UpdateItem (ReturnValues ALL_NEW). Prints one JSON line.

  boto3_loop.py URL SECONDS [client|resource]

client: boto3.client("dynamodb") with boto3's TypeSerializer/TypeDeserializer (plain values
both ways, as with_item gives); resource: boto3.resource("dynamodb").Table, the API of the
usual optimistic-locking examples. CPU is time.process_time() (user + system).
"""
import json
import sys
import time

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

ACCESS_KEY = "AKIDBENCHMARK0000000"
SECRET_KEY = "benchmarkbenchmarkbenchmarkbenchmark0000"
KEY = {"pk": "bench#1"}


def make(url, style):
    session = boto3.session.Session(aws_access_key_id=ACCESS_KEY,
                                    aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
    cfg = Config(retries={"max_attempts": 10, "mode": "standard"},
                 max_pool_connections=1)
    if style == "resource":
        table = session.resource("dynamodb", endpoint_url=url, config=cfg).Table("bench")

        def op():
            item = table.get_item(Key=KEY, ConsistentRead=True)["Item"]
            version = item["version"]
            item["counter"] += 1
            return table.update_item(
                Key=KEY, UpdateExpression="SET #c = :c, #v = :nv",
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#c": "counter", "#v": "version"},
                ExpressionAttributeValues={":c": item["counter"], ":nv": version + 1,
                                           ":v": version},
                ReturnValues="ALL_NEW")["Attributes"]
        return op

    client = session.client("dynamodb", endpoint_url=url, config=cfg)
    ser, de = TypeSerializer(), TypeDeserializer()
    key = {k: ser.serialize(v) for k, v in KEY.items()}

    def op():
        res = client.get_item(TableName="bench", Key=key, ConsistentRead=True)
        item = {k: de.deserialize(v) for k, v in res["Item"].items()}
        version = item["version"]
        item["counter"] += 1
        res = client.update_item(
            TableName="bench", Key=key, UpdateExpression="SET #c = :c, #v = :nv",
            ConditionExpression="#v = :v",
            ExpressionAttributeNames={"#c": "counter", "#v": "version"},
            ExpressionAttributeValues={":c": ser.serialize(item["counter"]),
                                       ":nv": ser.serialize(version + 1),
                                       ":v": ser.serialize(version)},
            ReturnValues="ALL_NEW")
        return {k: de.deserialize(v) for k, v in res["Attributes"].items()}
    return op


def main():
    url, seconds = sys.argv[1], float(sys.argv[2])
    style = sys.argv[3] if len(sys.argv) > 3 else "client"
    op = make(url, style)
    for _ in range(100):
        op()
    ops = 0
    c0, t0 = time.process_time(), time.monotonic()
    deadline = t0 + seconds
    while True:
        for _ in range(20):
            op()
        ops += 20
        if time.monotonic() >= deadline:
            break
    wall = time.monotonic() - t0
    cpu = time.process_time() - c0
    print(json.dumps({"ops": ops, "wall_s": wall, "cpu_s": cpu, "ops_per_s": ops / wall,
                      "requests_per_s": 2 * ops / wall, "cpu_us_per_op": cpu / ops * 1e6,
                      "runtime": "boto3 " + boto3.__version__ + " (" + style + ")"}))


if __name__ == "__main__":
    main()
