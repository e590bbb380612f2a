-- airig gateway role: checks of a request body before it is routed (issue 29 item 3).
--
-- HAProxy routes and bills on the first "model" of a body (json_query), the engines serve the
-- last (Python's json and nlohmann's keep the last of a repeated key): a body that repeats a
-- top-level key, "model" or any other, is refused. Keys are compared as JSON decodes them
-- ("mod\u0065l" is "model"). And a body HAProxy could not hold whole is refused: what was not
-- read was not checked. Sets txn.airig_body to "repeated" or "too_big" (else leaves it unset).
--
-- A small scanner of JSON's top level: strings (with their escapes) and nesting are skipped;
-- only the keys of the outermost object are kept. Text that is not a JSON object is left to the
-- engine, which answers it with its own error.

local ESCAPES = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n',
                 r = '\r', t = '\t'}

local function utf8(code)
  if code < 0x80 then
    return string.char(code)
  elseif code < 0x800 then
    return string.char(0xC0 | (code >> 6), 0x80 | (code & 0x3F))
  end
  return string.char(0xE0 | (code >> 12), 0x80 | ((code >> 6) & 0x3F), 0x80 | (code & 0x3F))
end

local function unescape(raw)
  return (string.gsub(raw, '\\(.)(%x?%x?%x?%x?)', function(c, hex)
    if c == 'u' and #hex == 4 then
      return utf8(tonumber(hex, 16))
    end
    return (ESCAPES[c] or c) .. hex
  end))
end

-- The body's first top-level key seen twice, or nil.
local function repeated_key(body)
  local i, n = 1, #body
  local function skip_space()
    local _, stop = string.find(body, '^[ \t\r\n]*', i)
    i = stop + 1
  end
  local function read_string()  -- at an opening quote; the raw text inside, or nil
    local start = i + 1
    i = start
    while i <= n do
      local c = string.byte(body, i)
      if c == 92 then      -- backslash: skip what it escapes
        i = i + 2
      elseif c == 34 then  -- closing quote
        i = i + 1
        return string.sub(body, start, i - 2)
      else
        i = i + 1
      end
    end
    return nil
  end
  skip_space()
  if string.byte(body, i) ~= 123 then  -- not an object
    return nil
  end
  i = i + 1
  local seen, depth, want_key = {}, 0, true
  while i <= n do
    skip_space()
    local c = string.byte(body, i)
    if c == nil then
      return nil
    elseif depth == 0 and want_key then
      if c ~= 34 then
        return nil  -- '}' of an empty object, or not JSON
      end
      local raw = read_string()
      if raw == nil then
        return nil
      end
      local key = unescape(raw)
      if seen[key] then
        return key
      end
      seen[key] = true
      want_key = false
      skip_space()
      if string.byte(body, i) ~= 58 then  -- ':'
        return nil
      end
      i = i + 1
    elseif c == 34 then
      if read_string() == nil then
        return nil
      end
    elseif c == 123 or c == 91 then
      depth = depth + 1
      i = i + 1
    elseif c == 125 or c == 93 then
      if depth == 0 then
        return nil  -- the end of the object
      end
      depth = depth - 1
      i = i + 1
    elseif c == 44 and depth == 0 then
      want_key = true
      i = i + 1
    else
      i = i + 1
    end
  end
  return nil
end

local function check(txn)
  local ok, err = pcall(function()
    local length = tonumber(txn.f:req_body_len()) or 0
    local size = tonumber(txn.f:req_body_size()) or length
    if size > length then
      txn:set_var("txn.airig_body", "too_big")
      return
    end
    local body = txn.f:req_body()
    if body ~= nil and repeated_key(body) ~= nil then
      txn:set_var("txn.airig_body", "repeated")
    end
  end)
  if not ok then
    txn:set_var("txn.airig_body", "unreadable")
    core.Warning("airig body check: " .. tostring(err))
  end
end

core.register_action("airig_body_check", {"http-req"}, check)
