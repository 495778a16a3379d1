--- ddb.transport.curl: the blocking libcurl transport, one easy handle of the C core's, for
-- the client (which signs, sends and parses through it in one C call) and for the credential
-- chain's own requests.
-- @module ddb.transport.curl

local core = require "ddb.core"

local _M = {}

--- A transport over a new libcurl handle.
-- @param opts `ca_bundle` (nil or "": the system's), `connect_timeout_ms` (nil: 1000),
--   `max_answer_bytes` (nil: the core's default), checked by the caller
-- @return the transport: `request(self, url, header_lines, body, timeout_ms[, method])`
--   returns status, headers, body, maybe_resent | nil, err; `sleep(self, ms)`, `close()`
function _M.new(opts)
  local ca = opts.ca_bundle
  if ca == "" then ca = nil end
  local handle = core.curl_new{ ca_bundle = ca, connect_timeout_ms = opts.connect_timeout_ms,
    max_answer_bytes = opts.max_answer_bytes }
  return {
    name = "curl",
    handle = handle,
    -- Client:call signs, sends and parses through it in one C call (handle:call)
    signed_call = handle,
    request = function(_, url, headers, body, timeout_ms, method)
      return handle:request(url, headers, body, timeout_ms, method)
    end,
    sleep = function(_, ms) return core.sleep_ms(ms) end,
    close = function() return handle:close() end,
  }
end

return _M
