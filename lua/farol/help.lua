-- help(x): farol's documentation of a function, class, method or module,
-- taken from docs/API.md (compiled in as "farol.api_md"), so the REPL's help
-- and the written contract are one text.  x may be the value itself
-- (help(farol.conv2d), help(x.view) for a tensor x, help(farol.nn.Linear),
-- help(model)) or a name (help("conv2d"), help("farol.save")).
local farol = require("farol")

local M = {}

-- ---- docs/API.md as entries: a table row, a bullet (with its continuation
-- lines), a paragraph or a code block, each with its section

local function parse(text)
  local entries, section, cur, in_code = {}, "", nil, false
  local function close() if cur then entries[#entries + 1] = cur; cur = nil end end
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    if in_code then
      cur.text = cur.text .. "\n" .. line
      if line:match("^```") then in_code = false; close() end
    elseif line:match("^```") then
      close(); cur = {section = section, text = line, code = true}; in_code = true
    elseif line:match("^#+ ") then
      close(); section = line:gsub("^#+ ", "")
    elseif line:match("^%s*$") then
      close()
    elseif line:match("^|") then
      close()
      local next_line = lines[i + 1] or ""
      -- not the separator, nor a header row (the one above a separator)
      if not line:match("^|%s*%-%-%-") and not next_line:match("^|%s*%-%-%-") then
        local cells = {}
        for c in line:gmatch("|([^|]*)") do
          c = c:match("^%s*(.-)%s*$")
          if c ~= "" then cells[#cells + 1] = c end
        end
        entries[#entries + 1] = {section = section, text = table.concat(cells, "  --  ")}
      end
    elseif line:match("^%s*%- ") then
      close(); cur = {section = section, text = line:match("^%s*%- (.*)")}
    elseif cur then
      cur.text = cur.text .. " " .. line:match("^%s*(.-)$")
    else
      cur = {section = section, text = line}
    end
  end
  close()
  return entries
end

-- name -> list of {entry, strong}: every identifier in an entry's code
-- spans; strong when written as a call or after farol. / : / .
local function build_index(entries)
  local index = {}
  for n, e in ipairs(entries) do
    e.n = n
    local spans = {}
    if e.code then spans[1] = e.text else for s in e.text:gmatch("`([^`]+)`") do spans[#spans + 1] = s end end
    for _, s in ipairs(spans) do
      for pos, name in s:gmatch("()([%a_][%w_]*)") do
        local before, after = s:sub(pos - 1, pos - 1), s:sub(pos + #name, pos + #name)
        local strong = after == "(" or before == "." or before == ":"
        local list = index[name]
        if not list then list = {}; index[name] = list end
        local last = list[#list]
        if last and last.entry == e then
          last.strong = last.strong or strong
        else
          list[#list + 1] = {entry = e, strong = strong}
        end
      end
    end
  end
  return index
end

local entries, index
local function load_doc()
  if not index then
    entries = parse(require("farol.api_md"))
    index = build_index(entries)
  end
end

-- ---- what a value is called: a walk over farol's tables and the tensor
-- methods, value -> "farol.nn.Linear", "Tensor:view"

local names
local function tensor_methods()
  local mt = getmetatable(farol.zeros(1))
  local idx = mt and mt.__index
  if type(idx) == "table" then return idx end
  if type(idx) == "function" and debug and debug.getupvalue then
    local _, up = debug.getupvalue(idx, 1)
    if type(up) == "table" then return up end
  end
  return {}
end
M.tensor_methods = tensor_methods

local function build_names()
  names = {}
  local seen = {}
  local function walk(t, prefix, depth)
    if seen[t] or depth > 3 then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and not k:match("^_") then
        local full = prefix .. "." .. k
        -- the shortest name wins (farol.relu over farol.nn.functional.relu);
        -- tensor methods keep theirs
        local have = names[v]
        if (type(v) == "function" or type(v) == "table") and
           (not have or (not have:match("^Tensor:") and #full < #have)) then
          names[v] = full
        end
        if type(v) == "table" and k ~= "api_md" then walk(v, full, depth + 1) end
      end
    end
  end
  for k, f in pairs(tensor_methods()) do
    if type(k) == "string" and type(f) == "function" then names[f] = "Tensor:" .. k end
  end
  walk(farol, "farol", 0)
end

local function name_of(x)
  if not names then build_names() end
  return names[x]
end

-- ---- lookup

-- the section a qualified name belongs to, to rank entries
local function hint(full)
  if full:match("^Tensor:") then return "Tensors" end
  if full:match("^farol%.nn%.") then return "Modules" end
  if full:match("^farol%.image") or full:match("^farol%.viz") then return "Images" end
  return nil
end

-- entries that mention short: prose before examples (code blocks), calls
-- and farol./:/. mentions before bare words, the section of full first
local function find(short, full)
  load_doc()
  local hits = {}
  local sec = hint(full)
  for _, h in ipairs(index[short] or {}) do
    local score = (h.entry.code and 0 or 4) + (h.strong and 2 or 0)
    if sec and h.entry.section:find(sec, 1, true) then score = score + 1 end
    -- written out as the user would call it: farol.grad(, x:view(
    local call = full:match("^Tensor:") and ":" .. short or full
    if h.entry.text:find(call .. "(", 1, true) or h.entry.text:find(call .. "`", 1, true) then
      score = score + 3
    end
    hits[#hits + 1] = {entry = h.entry, score = score}
  end
  table.sort(hits, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.entry.n < b.entry.n
  end)
  local out = {}
  for _, h in ipairs(hits) do
    -- the best kind only: no examples when prose has it, no bare words when a call does
    if #out < 3 and h.score >= hits[1].score - 1 then
      out[#out + 1] = h.entry
    end
  end
  return out
end

-- wraps text at 78 columns, indented
local function wrap(text, indent)
  local out, line = {}, indent
  for word in text:gmatch("%S+") do
    if #line + #word + 1 > 78 and line ~= indent then
      out[#out + 1] = line
      line = indent
    end
    line = line .. (line == indent and "" or " ") .. word
  end
  if line ~= indent then out[#out + 1] = line end
  return table.concat(out, "\n")
end

-- the clauses of a long list entry that mention name: the text is split at
-- the commas outside brackets; its lead-in ("Pointwise:") is kept
local function clauses(text, name)
  local lead, rest = text:match("^(.-:)%s+(.*)$")
  if not lead or #lead > 70 then lead, rest = nil, text end
  local parts, depth, start = {}, 0, 1
  for i = 1, #rest do
    local c = rest:sub(i, i)
    if c == "(" or c == "[" or c == "{" then depth = depth + 1
    elseif c == ")" or c == "]" or c == "}" then depth = math.max(0, depth - 1)
    elseif c == "," and depth == 0 then parts[#parts + 1] = rest:sub(start, i - 1); start = i + 1 end
  end
  parts[#parts + 1] = rest:sub(start)
  local out, last = {}, nil
  local pat = "%f[%w_]" .. name:lower() .. "%f[^%w_]"
  for i, p in ipairs(parts) do
    if p:lower():find(pat) then
      out[#out + 1] = (last == i - 1 and ", " or " ... ") .. p:match("^%s*(.-)%s*$")
      last = i
    end
  end
  if #out == 0 then return text end
  return (lead or "") .. table.concat(out) .. (last < #parts and " ..." or "")
end

local function show(entry, name)
  if entry.code then
    return (entry.text:gsub("^```%w*\n", ""):gsub("\n```$", ""):gsub("\n", "\n  "):gsub("^", "  "))
  end
  local text = entry.text
  if #text > 300 then text = clauses(text, name) end
  return wrap(text:gsub("`", ""), "  ")
end

local overview = [[
help(x) shows what docs/API.md says about x: a farol function (help(farol.conv2d)),
a tensor method (help(x.view) for a tensor x), a module class or instance
(help(farol.nn.Linear), help(model)), or a name (help("save")).
Sections: %s.
In the REPL: Tab completes names, fields and methods; Ctrl-C interrupts;
traceback() shows where the last error came from (.traceback on prints it every time).]]

-- the help text for x (a string)
function M.text(x, ...)
  if select("#", ...) > 0 then error("farol: help: takes one argument, got " .. (select("#", ...) + 1), 2) end
  load_doc()
  if x == nil then
    local secs, seen = {}, {}
    for _, e in ipairs(entries) do
      if e.section ~= "" and e.n > 1 and not e.section:match("^farol") and not seen[e.section] then seen[e.section] = true; secs[#secs + 1] = e.section end
    end
    return string.format(overview, table.concat(secs, "; "))
  end
  local full
  if type(x) == "string" then
    full = x
  else
    full = name_of(x)
    if not full and type(x) == "table" then
      -- a module instance: its class
      local mt = getmetatable(x)
      full = (mt and name_of(mt)) or (type(x.__name) == "string" and "farol.nn." .. x.__name)
    end
    if not full and farol.is_tensor(x) then full = "farol.tensor" end
    if not full then
      return "help: no documentation for this " .. type(x) .. " (not a farol function, class or method)"
    end
  end
  local short = full:match("([%a_][%w_]*)$")
  if not short then return "help: '" .. full .. "' is not a name" end
  local found = find(short, full)
  if #found == 0 then return "help: docs/API.md says nothing about " .. full end
  local parts = {full}
  for _, e in ipairs(found) do parts[#parts + 1] = "[" .. e.section .. "]\n" .. show(e, short) end
  return table.concat(parts, "\n")
end

function M.help(...)
  print(M.text(...))
end

return M
