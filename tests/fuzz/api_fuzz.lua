-- The Lua API fuzzer: every public function and tensor method of farol
-- (farol.*, x:*, the metamethods, nn constructors and modules, Saliency,
-- image and viz helpers) called with hostile argument combinations: freed,
-- expanded, transposed, 0-d and empty tensors, int64 and float64 ones,
-- huge, negative, NaN and fractional numbers, wrong types, arrays of
-- tensors, nested arrays, farol.tuple, options tables with unknown keys, and
-- tables whose metamethods free tensors, raise or lie about their length.
-- Every few hundred calls a stretch runs with the GC collecting on nearly
-- every allocation and finalizers that free tensors of the pool, so a
-- pointer C keeps across an allocation is caught.
--
--   build-asan/farol tests/fuzz/api_fuzz.lua [seconds (default 20)] [seed]
--   LUA_CPATH="build/?.so;;" lua5.4 tests/fuzz/api_fuzz.lua 600 7
--
-- A call may succeed or raise an error starting with "farol:"; Lua's own
-- argument errors ("bad argument #k ...") and errors raised by the hostile
-- values themselves are fine too.  Anything else is a finding: printed with
-- the call, and the exit status is 1.  A crash or a sanitizer report ends
-- the process (scripts/test runs this under ASan+UBSan).  Sizes stay small
-- or absurd (2^62): nothing legal allocates more than a few megabytes.
local farol = require("farol")

local seconds = tonumber(arg and arg[1]) or 20
local seed = tonumber(arg and arg[2]) or 1
local trace = arg and arg[3] == "trace"  -- each call on stderr before it runs (to find a hang)
math.randomseed(seed)
farol.manual_seed(seed)
farol.set_num_threads(1)

local R = math.random
local function pick(t) return t[R(#t)] end

-- ---- values ----

local HOSTILE = "hostile value raised"  -- errors of our own making
local pool = {}                          -- tensors the hostile tables free

local function small_shape()
  local nd = R(0, 4)
  local s = {}
  for i = 1, nd do s[i] = pick({0, 1, 1, 2, 2, 3, 4}) end
  return s
end

local tensor_makers = {
  function() return farol.randn(table.unpack(small_shape())) end,
  function() return farol.randn(2, 3) end,
  function() return farol.randn(1, 2, 5, 5) end,              -- a conv/pool input
  function() return farol.randn(3, 2, 3, 3) end,              -- a conv weight
  function() return farol.tensor(3.5) end,                    -- 0-d
  function() return farol.zeros(0, 3) end,                    -- empty
  function() return farol.zeros(2, 0, 4) end,
  function() return farol.tensor({1, 2, 3}, "int64") end,
  function() return farol.tensor({{1, 0}, {2, 1}}, "int64") end,
  function() return farol.tensor({math.maxinteger, math.mininteger}, "int64") end,
  function() return farol.randn(3, 3):to("float64") end,
  function() return farol.randn(1, 3):expand(4, 3) end,       -- stride 0
  function() return farol.randn(3, 4):t() end,                -- not contiguous
  function() return farol.randn(4, 4):narrow(2, 2, 2) end,
  function() return farol.randn(2, 3):requires_grad(true) end,
  function() return farol.randn(2, 3):requires_grad(true) * 2 end,  -- has a node
  function() local x = farol.randn(2, 2); x:free(); return x end,  -- freed
  function() return farol.tensor({0 / 0, 1 / 0, -1 / 0}) end,
  function() return farol.ones(2, 3):gt(0) end,
}

local function new_tensor()
  local t = pick(tensor_makers)()
  pool[#pool + 1] = t
  if #pool > 64 then table.remove(pool, 1) end
  return t
end

local function some_tensor()
  if #pool > 0 and R() < 0.5 then return pool[R(#pool)] end
  return new_tensor()
end

local NUMBERS = {0, 1, 2, 3, 4, -1, -2, 1.5, -0.5, 0 / 0, 1 / 0, -1 / 0, 2 ^ 53, 2 ^ 62 // 1,
                 -(2 ^ 62 // 1), math.maxinteger, math.mininteger, 1e308, 2.0, 1e-300}
local STRINGS = {"float32", "float64", "int64", "bogus", "", "shape", "grad", "stride",
                 "/nonexistent/dir/x.safetensors", "/nonexistent/x.npy", "1"}

local gen  -- forward

-- tables whose metamethods do harm: free a tensor of the pool, raise, or
-- give a huge length
local function hostile_table(depth)
  local t = {}
  for i = 1, R(0, 3) do t[i] = gen(depth + 1) end
  local mt = {}
  local kind = R(4)
  if kind == 1 then
    mt.__index = function()
      local x = pool[R(math.max(#pool, 1))]
      if x then x:free() end
      collectgarbage()
      return 1
    end
    mt.__len = function() return 2 end
  elseif kind == 2 then
    mt.__index = function() error(HOSTILE) end
    mt.__len = function() error(HOSTILE) end
  elseif kind == 3 then
    mt.__len = function() return 2 ^ 61 // 1 end
  else
    mt.__tostring = function() error(HOSTILE) end
    mt.__call = function() error(HOSTILE) end
  end
  return setmetatable(t, mt)
end

local function forward_fn()
  return pick({
    function(x) return x * 2 end,
    function(x) return (x * 2):sum(2) end,
    function(x) error(HOSTILE) end,
    function() return nil end,
    function(x) x:free(); collectgarbage(); return farol.randn(2, 3) end,
    function(x, ...) return x end,
  })
end

local gens = {
  function() return nil end,
  function() return some_tensor() end,
  function() return some_tensor() end,
  function() return some_tensor() end,
  function() return pick(NUMBERS) end,
  function() return pick(NUMBERS) end,
  function() return pick({0, 1, 2, 3, -1}) end,
  function() return pick(STRINGS) end,
  function() return R() < 0.5 end,
  function() return forward_fn() end,
  function(d) local t = {} for i = 1, R(0, 4) do t[i] = pick({0, 1, 2, 3, -1, 2 ^ 62 // 1}) end return t end,
  function(d) local t = {} for i = 1, R(1, 3) do t[i] = some_tensor() end return t end,
  function(d) return {{1, 2}, {3, 4}} end,
  function(d) return {{1, 2}, {3}} end,  -- ragged
  function(d) return farol.tuple(1, 2) end,
  function(d) return {stride = pick({1, 2, 0, -1, {1, 2}}), padding = pick({0, 1, "same", {1, 0}})} end,
  function(d) return {strides = 1, [1] = 2} end,
  function(d) return {n = pick({-3, 2 ^ 32 // 1, 1.5, 1}), 1} end,
  function(d) return d < 2 and hostile_table(d) or {} end,
  function(d) return io.stdout end,     -- a foreign userdata
  function(d) return coroutine.create(function() end) end,
}

-- milder values, so that calls get past the first checks and into the ops
local mild = {
  function() return some_tensor() end,
  function() return some_tensor() end,
  function() return pick({1, 2, 3, -1}) end,
  function() return nil end,
  function() return pick({"float32", "float64", "int64"}) end,
  function() return {1, 2} end,
  function() return {some_tensor(), some_tensor()} end,
}
local mild_call = false
gen = function(depth)
  if mild_call then return mild[R(#mild)]() end
  return gens[R(#gens)](depth or 0)
end

-- ---- what is called ----

local targets = {}
local function add(name, f) targets[#targets + 1] = {name = name, f = f} end

local skip = {set_num_threads = true, save = true, _image_save = true, _listdir = true,
              models = true, clock = true, help = true}  -- help prints the manual
-- functions named _x are internal helpers of farol's Lua half, but Lua code
-- can reach those of the farol table: they are fuzzed too
local function public(k) return k:sub(1, 1) ~= "_" end
local function reachable(k) return public(k) or not k:find("save") end
for k, v in pairs(farol) do
  if type(v) == "function" and not skip[k] and reachable(k) then add("farol." .. k, v) end
end
local tmt = debug.getmetatable(farol.ones(1))
local _, methods = debug.getupvalue(tmt.__index, 1)
for k, v in pairs(methods) do add("x:" .. k, v) end
for _, k in ipairs({"__add", "__sub", "__mul", "__div", "__pow", "__unm", "__len", "__index",
                    "__newindex", "__tostring", "__close", "__gc"}) do
  add("mt." .. k, tmt[k])
end
for k, v in pairs(farol.nn) do
  if type(v) == "table" and getmetatable(v) and getmetatable(v).__call then add("nn." .. k, v) end
end
for k, v in pairs(farol.nn.functional or {}) do
  if type(v) == "function" and public(k) then add("nn.functional." .. k, v) end
end
for k, v in pairs(farol.image or {}) do
  if type(v) == "function" and k ~= "save" and k ~= "load" and public(k) then add("image." .. k, v) end
end
for k, v in pairs(farol.dataset or {}) do  -- (not the ones that read files or run jobs)
  if type(v) == "function" and k ~= "load" and k ~= "open" and k ~= "run" and public(k) then
    add("dataset." .. k, v)
  end
end
for k, v in pairs(farol.viz or {}) do
  if type(v) == "function" and k ~= "save" and public(k) then add("viz." .. k, v) end
end
-- modules built legally, then called with hostile inputs
local modules = {
  farol.nn.Linear(3, 2), farol.nn.Conv2d(2, 3, 3), farol.nn.Sequential(farol.nn.ReLU()),
  farol.nn.LayerNorm(3), farol.nn.Embedding(5, 2), farol.nn.BatchNorm2d(2),
}
-- attribution methods (farol.Saliency, farol.IntegratedGradients, ...):
-- built with a forward from the pool or a module (NoiseTunnel around one of
-- them, layer methods with one of a Sequential's layers), then attribute
-- with hostile arguments
local seq = farol.nn.Sequential(farol.nn.Linear(3, 4), farol.nn.ReLU(), farol.nn.Linear(4, 2))
local function build(name)
  local ctor = farol[name]
  local ok, m
  if name == "NoiseTunnel" then
    ok, m = pcall(ctor, farol.Saliency(forward_fn()))
  elseif name:match("^Layer") or name == "GuidedGradCam" then
    ok, m = pcall(ctor, seq, seq[pick({1, 2, 3})])
  else
    ok, m = pcall(ctor, R() < 0.5 and forward_fn() or seq)
  end
  return ok and type(m) == "table" and m or nil
end
for k, v in pairs(farol) do
  if type(v) == "function" and k:match("^%u") then
    add(k .. ":attribute", function(...)
      local m = build(k)
      if m then return m:attribute(...) end
    end)
  end
end
add("module()", function(...) return pick(modules)(...) end)
add("module:load_state_dict", function(...) return pick(modules):load_state_dict(...) end)
table.sort(targets, function(a, b) return a.name < b.name end)

-- ---- the loop ----

local function expected(err)
  if type(err) ~= "string" then return false end
  return err:find("^farol: ") or err:find("bad argument #%d") or err:find(HOSTILE, 1, true)
    or err:find("^[^\n]*: farol: ")  -- farol's Lua parts add a position to an error they re-raise
    or err:find("^[^\n]*api_fuzz%.lua:%d+:")  -- a function of ours given a hostile argument
end

-- the error, with a traceback when it is a finding
local function handler(err)
  if expected(err) then return err end
  return tostring(err) .. "\n" .. debug.traceback("", 2)
end

local function describe(v)
  if farol.is_tensor(v) then
    local ok, s = pcall(function() return "tensor" .. table.concat(v:size(), "x") .. " " .. v:dtype() end)
    return ok and s or "tensor(freed)"
  end
  if type(v) == "table" then return getmetatable(v) and "table(mt)" or "table#" .. rawlen(v) end
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local findings, seen, calls = 0, {}, 0
local per_target = {}
local deadline = os.clock() + seconds
local stress = false

while os.clock() < deadline do
  for _ = 1, 100 do
    -- GC stress stretches: collect on nearly every allocation, with
    -- finalizers freeing tensors of the pool
    if calls % 500 == 0 then
      stress = not stress
      if stress then collectgarbage("incremental", 0, 1000, 0) else collectgarbage("incremental", 200, 100, 13) end
    end
    if stress and #pool > 0 and R() < 0.3 then
      local victim = pool[R(#pool)]
      setmetatable({}, {__gc = function() victim:free() end})
    end
    local t = targets[R(#targets)]
    mild_call = R() < 0.4
    local n = R(0, 4)
    local args = {}
    for i = 1, n do args[i] = gen() end
    -- methods mostly get a tensor as self
    if (t.name:sub(1, 2) == "x:" or t.name:sub(1, 3) == "mt.") and R() < 0.8 then
      args[1] = some_tensor()
      n = math.max(n, 1)
    end
    calls = calls + 1
    per_target[t.name] = (per_target[t.name] or 0) + 1
    if trace then
      local d = {}
      for i = 1, n do d[i] = describe(args[i]) end
      io.stderr:write(calls, " ", t.name, "(", table.concat(d, ", "), ")\n")
    end
    -- a call running Lua for too long is a hang (C loops are not seen here:
    -- they show as the whole run's time)
    local call_deadline = os.clock() + 2
    debug.sethook(function()
      if os.clock() > call_deadline then error("fuzz: the call ran Lua for over 2 s (a hang)", 2) end
    end, "", 1000)
    local ok, err = xpcall(t.f, handler, table.unpack(args, 1, n))
    debug.sethook()
    if not ok and not expected(err) then
      local key = t.name .. " | " .. tostring(err):gsub("0x%x+", "0x?"):gsub("%d+", "N")
      if not seen[key] then
        seen[key] = true
        findings = findings + 1
        local d = {}
        for i = 1, n do d[i] = describe(args[i]) end
        print(string.format("FINDING %s(%s)\n  %s", t.name, table.concat(d, ", "), tostring(err)))
      end
    end
    if #pool > 48 then for i = 1, 16 do table.remove(pool, 1) end end
  end
end
collectgarbage("incremental", 200, 100, 13)
pool = {}
collectgarbage()
collectgarbage()

local covered = 0
for _, t in ipairs(targets) do if per_target[t.name] then covered = covered + 1 end end
print(string.format("api_fuzz: seed %d, %d calls over %d targets (%d reached), %d findings",
                    seed, calls, #targets, covered, findings))
os.exit(findings == 0 and 0 or 1)
