-- The LDoc reference (make docs, config.ld): every public function of every module is in it,
-- and identifiers come through whole (the markdown of LDoc's default processor took `_x_` in
-- `version_attribute` for emphasis and printed "versionattribute").
local ROOT = (debug.getinfo(1, "S").source:sub(2):gsub("spec/unit/docs_spec%.lua$", ""))
if ROOT == "" then ROOT = "./" end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Public names that are deliberately not in the reference, with the reason.
local UNDOCUMENTED = {
  ["ddb.config.getenv"] = "a seam for tests to fake the environment (spec/helper.with_env)",
}

-- module name -> { name of a table of methods in the module, how LDoc prefixes them }
local MODULES = {
  -- ddb re-exports ddb.client's functions (ddb.new, ...): they are documented there
  { name = "ddb", documented_in = "ddb.client" },
  { name = "ddb.client", classes = { Client = "Client" } },
  { name = "ddb.optimistic", classes = { Store = "Store" } },
  { name = "ddb.transact" },
  { name = "ddb.cli" },
  { name = "ddb.sandbox" },
  { name = "ddb.scheduler" },
  { name = "ddb.credentials" },
  { name = "ddb.credentials.provider", classes = { Provider = "Provider" } },
  { name = "ddb.config" },
}

describe("the LDoc reference", function()
  local dir, pages = nil, {}

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    local p = assert(io.popen("cd " .. q(ROOT) .. " && ldoc -c config.ld -d " .. q(dir) ..
      " . 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    assert(out:match("exit=0%s*$"), "ldoc failed:\n" .. out)
    -- the processor config.ld names (discount) was there: no fallback to another one
    assert(not out:find("falling back to text", 1, true), out)
    assert(not out:find("using built-in markdown", 1, true), out)
    for _, m in ipairs(MODULES) do
      pages[m.name] = read(dir .. "/modules/" .. m.name .. ".html")
    end
    pages.index = read(dir .. "/index.html")
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  -- The names LDoc gave an entry (<a name = "...">) on a page.
  local function entries(html)
    local set = {}
    for n in html:gmatch('<a name%s*=%s*"([^"]+)"') do set[n] = true end
    return set
  end

  for _, m in ipairs(MODULES) do
    it("documents every public function of " .. m.name, function()
      local mod = require(m.name)
      local elsewhere = m.documented_in and require(m.documented_in) or {}
      local want = {}
      for k, v in pairs(mod) do
        if type(k) == "string" and not k:match("^_") and type(v) == "function" and
            not UNDOCUMENTED[m.name .. "." .. k] and elsewhere[k] ~= v then
          want[#want + 1] = k
        end
      end
      for field, prefix in pairs(m.classes or {}) do
        for k, v in pairs(mod[field]) do
          if type(k) == "string" and not k:match("^_") and type(v) == "function" then
            want[#want + 1] = prefix .. ":" .. k
          end
        end
      end
      table.sort(want)
      assert.is_true(#want > 0)
      local have, missing = entries(pages[m.name]), {}
      for _, name in ipairs(want) do
        if not have[name] then missing[#missing + 1] = name end
      end
      assert.same({}, missing)
    end)
  end

  it("documents the values and the options that are not functions", function()
    local ddb_page = entries(pages.ddb)
    assert.is_true(ddb_page.null, "ddb.null")
    local store_new = pages["ddb.optimistic"]:match('<a name = "new"></a>(.-)<dt>')
    assert.is_string(store_new)
    for _, option in ipairs{ "version_attribute", "on_event", "on_conflict", "token_attribute",
        "deadline_ms", "max_attempts", "backoff_base_ms" } do
      assert.truthy(store_new:find(option, 1, true), "optimistic.new omits " .. option)
    end
  end)

  it("gives every parameter of the public API a description", function()
    local bare = {}
    for _, name in ipairs{ "ddb", "ddb.client", "ddb.optimistic", "ddb.cli", "ddb.sandbox",
        "ddb.transact" } do
      -- LDoc prints a parameter as <span class="parameter">name</span> followed by its
      -- description in the same <li>
      for param, rest in pages[name]:gmatch(
          '<span class="parameter">([^<]+)</span>(.-)</li>') do
        if not rest:gsub("<[^>]*>", ""):find("%S") then bare[#bare + 1] = name .. ": " .. param end
      end
    end
    assert.same({}, bare)
  end)

  it("keeps identifiers whole on every page (no emphasis inside words, no dashes eaten)",
    function()
      for name, html in pairs(pages) do
        assert.is_nil(html:match("%w<em>"), name .. ": emphasis opened inside a word")
        assert.is_nil(html:match("</em>%w"), name .. ": emphasis closed inside a word")
        assert.is_nil(html:find("versionattribute", 1, true), name)
        assert.is_nil(html:find("deadlinems", 1, true), name)
        -- discount's smart dashes make "--lua" an en dash glued to a word
        assert.is_nil(html:match("&ndash;%w"), name .. ": an option's -- became a dash")
      end
      assert.truthy(pages["ddb.optimistic"]:find("version_attribute", 1, true))
      assert.truthy(pages["ddb.client"]:find("deadline_ms", 1, true))
      assert.truthy(pages["ddb.config"]:find("AWS_REGION", 1, true))
      assert.truthy(pages["ddb"]:find("marshal_item", 1, true))
    end)
end)
