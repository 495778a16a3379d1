-- wrk script: POSTs a GetItem to the fixed-response server (its rate over one connection).
-- luacheck: globals wrk
wrk.method = "POST"
wrk.body = '{"TableName":"bench","Key":{"pk":{"S":"bench#1"}},"ConsistentRead":true}'
wrk.headers["Content-Type"] = "application/x-amz-json-1.0"
wrk.headers["X-Amz-Target"] = "DynamoDB_20120810.GetItem"
