-- airig gateway role: the tokens of each answer, for usage per team and model.
--
-- A response filter (HAProxy 2.6 Lua filter API) that reads each answer as it passes, without
-- holding it back (a streamed answer still streams), and notes the last token counts it saw in
-- the txn variables the gateway's log line carries to airig-gateway-meter:
--   txn.prompt_tokens, txn.completion_tokens  from OpenAI's "usage" object (a whole answer, or
--                                             a stream's last chunk when the client asked for it)
--   otherwise llama.cpp's "timings" in a stream's last chunk: prompt_n + cache_n, predicted_n.
--   txn.streamed                              the chunks of a stream ("delta" objects), which
--                                             the meter counts as completion tokens, marked
--                                             estimated, when no count came (a stream closed
--                                             early, an engine that reports none; issue 29)
-- A model's own text cannot forge a count: inside a JSON string every quote is escaped, so
-- '"prompt_tokens":' only matches the answer's own keys. Counts are taken from the last match.

local AirigUsage = {}
AirigUsage.id = "airig usage"
AirigUsage.flags = filter.FLT_CFG_FL_HTX
AirigUsage.__index = AirigUsage

-- Enough of the previous piece to find a key split across two pieces of the answer.
local CARRY = 256
-- One byte less than '"delta":', so no chunk is counted twice across two pieces.
local DELTA = '"delta":'
local DELTA_CARRY = #DELTA - 1

function AirigUsage:new()
  return setmetatable({carry = "", usage = false, timings = {}, dcarry = "", streamed = 0},
                      AirigUsage)
end

function AirigUsage:start_analyze(txn, chn)
  if chn:is_resp() then
    filter.register_data_filter(self, chn)
  end
end

local function last(text, key)
  local found
  for n in string.gmatch(text, '"' .. key .. '"%s*:%s*(%d+)') do
    found = tonumber(n)
  end
  return found
end

local function count(self, txn, msg)
  local data = msg:body(0, -1)
  if data == nil or #data == 0 then
    return
  end
  local chunks = self.dcarry .. data
  local _, n = string.gsub(chunks, DELTA, "")
  self.dcarry = string.sub(chunks, -DELTA_CARRY)
  if n > 0 then
    self.streamed = self.streamed + n
    txn:set_var("txn.streamed", self.streamed)
  end
  local text = self.carry .. data
  self.carry = string.sub(text, -CARRY)
  local prompt, completion = last(text, "prompt_tokens"), last(text, "completion_tokens")
  if prompt and completion then
    self.usage = true
    txn:set_var("txn.prompt_tokens", prompt)
    txn:set_var("txn.completion_tokens", completion)
    return
  end
  if self.usage then
    return
  end
  for _, key in ipairs({"prompt_n", "cache_n", "predicted_n"}) do
    self.timings[key] = last(text, key) or self.timings[key]
  end
  local t = self.timings
  if t.prompt_n and t.predicted_n then
    txn:set_var("txn.prompt_tokens", t.prompt_n + (t.cache_n or 0))
    txn:set_var("txn.completion_tokens", t.predicted_n)
  end
end

-- Never raise: HAProxy 2.6 leaves a stream whose filter failed hanging (found with the
-- gateway's roll harness: the answer stayed in HAProxy's buffer until the server timeout). An
-- answer whose count cannot be read shows under "no count" instead. Returning nothing forwards
-- all of the data.
function AirigUsage:http_payload(txn, msg)
  pcall(count, self, txn, msg)
end

core.register_filter("airig_usage", AirigUsage, function(f, args)
  return f
end)
