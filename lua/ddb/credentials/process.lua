--- ddb.credentials.process: a profile's credential_process, run by the shell within the
-- call's deadline (refused inside nginx request phases, where spawning a process would block
-- the worker), its output cut off at the answer limit.
-- @module ddb.credentials.process

local core = require "ddb.core"
local creds = require "ddb.credentials.creds"
local context = require "ddb.credentials.context"

local type, tostring = type, tostring
local monotonic_ms = core.monotonic_ms
local concat = table.concat
local io_popen = io.popen
local cred_error, make_creds = creds.error, creds.make
local in_ngx, past = context.in_ngx, context.past

local _M = {}

local EXIT_MARK = "__ddb_credential_process_exit "

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function process_source(ctx, command, profile)
  local name = "credential_process (profile " .. profile .. ")"
  return {
    name = name,
    fetch = function(_, deadline)
      local ngx = in_ngx()
      if ngx then
        local phase = ngx.get_phase()
        if phase ~= "init" and phase ~= "init_worker" then
          return nil, cred_error(("%s cannot run in nginx's '%s' phase: spawning a process " ..
            "blocks the whole worker; use another credential source under nginx (or fetch " ..
            "non-expiring credentials in init_by_lua)"):format(name, tostring(phase)))
        end
      end
      -- the shell runs the command as the AWS CLI documents it, with no stdin; the subshell
      -- keeps an `exit` inside the command from skipping the status line
      local run = "( " .. command .. "\n) </dev/null"
      if deadline then
        local left = deadline - monotonic_ms()
        if left < 1 then return nil, cred_error(name .. ": no time left to run it") end
        -- coreutils' timeout puts the command in a process group of its own and signals the
        -- whole group at the deadline (TERM, then KILL a second later), so nothing it started
        -- keeps the pipe open; where it is missing, only the output limit applies
        run = ("if command -v timeout >/dev/null 2>&1; then timeout -k 1 %.3f sh -c %s " ..
          "</dev/null; else %s; fi"):format(left / 1000, shell_quote(command), run)
      end
      local f = io_popen(run .. "; printf '\\n" .. EXIT_MARK .. "%d\\n' $?", "r")
      if not f then return nil, cred_error(name .. ": cannot start the command") end
      -- read up to the limit (and the status line after it), no further: closing the pipe
      -- then ends a command that goes on writing (SIGPIPE)
      local limit = ctx.max_answer_bytes + #EXIT_MARK + 16
      local parts, have = {}, 0
      while have <= limit do
        local chunk = f:read(4096)
        if not chunk then break end
        parts[#parts + 1] = chunk
        have = have + #chunk
      end
      f:close()
      if have > limit then
        return nil, cred_error(("%s: the command's output is longer than %d bytes"):format(name,
          ctx.max_answer_bytes))
      end
      local out = concat(parts)
      local body, code = out:match("^(.*)\n" .. EXIT_MARK .. "(%d+)\n$")
      if not body then return nil, cred_error(name .. ": the command's exit status is unknown") end
      if (code == "124" or code == "137") and past(deadline) then
        return nil, cred_error(name .. ": the command had not finished at the call's deadline " ..
          "and was stopped")
      end
      if code ~= "0" then
        return nil, cred_error(name .. ": the command exited with status " .. code)
      end
      local doc = core.decode(body)
      if type(doc) ~= "table" then
        return nil, cred_error(name .. ": the command's output is not a JSON object")
      end
      if doc.Version ~= 1 then
        return nil, cred_error(name .. ": the command's output has Version " ..
          tostring(doc.Version):sub(1, 16) .. "; only Version 1 is supported")
      end
      return make_creds(doc.AccessKeyId, doc.SecretAccessKey, doc.SessionToken, doc.Expiration,
        name)
    end,
  }
end

_M.source = process_source

return _M
