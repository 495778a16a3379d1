// The AWS SDK for JavaScript v3 doing the with_item loop against the fixed-response server:
// a consistent GetItem, the change, a conditional UpdateItem (ReturnValues ALL_NEW), values
// converted with @aws-sdk/util-dynamodb. Prints one JSON line.
//   node sdk_loop.mjs URL SECONDS
import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { createRequire } from "node:module";

const [url, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || "5");
const client = new DynamoDBClient({
  endpoint: url,
  region: "us-east-1",
  credentials: { accessKeyId: "AKIDBENCHMARK0000000",
    secretAccessKey: "benchmarkbenchmarkbenchmarkbenchmark0000" },
  maxAttempts: 10,
});
const key = marshall({ pk: "bench#1" });

async function op() {
  const got = await client.send(new GetItemCommand({ TableName: "bench", Key: key,
    ConsistentRead: true }));
  const item = unmarshall(got.Item);
  const version = item.version;
  item.counter += 1;
  const res = await client.send(new UpdateItemCommand({
    TableName: "bench", Key: key, UpdateExpression: "SET #c = :c, #v = :nv",
    ConditionExpression: "#v = :v",
    ExpressionAttributeNames: { "#c": "counter", "#v": "version" },
    ExpressionAttributeValues: marshall({ ":c": item.counter, ":nv": version + 1,
      ":v": version }),
    ReturnValues: "ALL_NEW",
  }));
  return unmarshall(res.Attributes);
}

// V8 compiles the SDK's hot paths over the first seconds: warm up for 3 s
const warm = performance.now();
while (performance.now() - warm < 3000) await op();
const c0 = process.cpuUsage();
const t0 = performance.now();
let ops = 0;
for (;;) {
  for (let i = 0; i < 20; i++) await op();
  ops += 20;
  if (performance.now() - t0 >= seconds * 1000) break;
}
const wall = (performance.now() - t0) / 1000;
const c = process.cpuUsage(c0);
const cpu = (c.user + c.system) / 1e6;
const version = createRequire(import.meta.url)("@aws-sdk/client-dynamodb/package.json").version;
console.log(JSON.stringify({ ops, wall_s: wall, cpu_s: cpu, ops_per_s: ops / wall,
  requests_per_s: 2 * ops / wall, cpu_us_per_op: cpu / ops * 1e6,
  runtime: `@aws-sdk/client-dynamodb ${version} (node ${process.version})` }));
client.destroy();
