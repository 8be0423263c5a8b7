-- Shared by the specs: where the fixtures are, and closeness checks.
local farol = require("farol")

local H = {}

-- tests/fixtures, found from this file's location so specs run from anywhere
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
H.fixtures = here .. "/../fixtures"

function H.load(rel)
  return farol.load(H.fixtures .. "/" .. rel)
end

-- the names (without .safetensors) of the fixture files in tests/fixtures/dir, sorted
function H.fixture_files(dir)
  local files = {}
  local p = io.popen('ls "' .. H.fixtures .. "/" .. dir .. '"')
  for name in p:lines() do
    if name:match("%.safetensors$") then files[#files + 1] = name:gsub("%.safetensors$", "") end
  end
  p:close()
  table.sort(files)
  return files
end

-- "a,b,c" (a fixture's metadata list) -> {"a", "b", "c"}; nil -> {}
function H.split(s)
  local out = {}
  for item in (s or ""):gmatch("[^,]+") do out[#out + 1] = item end
  return out
end

function H.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- writes bytes to path and returns path
function H.write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

-- elementwise |got - exp| <= atol + rtol * |exp|, and equal shapes
function H.close(got, exp, rtol, atol, what)
  what = what or "tensor"
  assert(farol.is_tensor(got), what .. ": expected a tensor, got " .. type(got))
  local gs, es = table.concat(got:size(), "x"), table.concat(exp:size(), "x")
  assert(gs == es, string.format("%s: shape %s, expected %s", what, gs, es))
  local g = got:to("float64"):reshape(-1)
  local e = exp:to("float64"):reshape(-1)
  local n = g:numel()
  for i = 1, n do
    local a, b = g[i], e[i]
    local both_nan = a ~= a and b ~= b
    if not (a == b or both_nan or math.abs(a - b) <= atol + rtol * math.abs(b)) then
      error(string.format("%s: element %d is %.10g, expected %.10g (rtol %g, atol %g)",
                          what, i, a, b, rtol, atol), 2)
    end
  end
  return true
end

-- evaluates a *_lua fixture expression with tensor:NAME standing for t[NAME]
function H.eval_lua(expr, t)
  local code = expr:gsub("tensor:([%w_%.]+)", function(name)
    assert(t[name], "fixture has no tensor " .. name)
    return string.format("T[%q]", name)
  end)
  local f = assert(load("return " .. code, "=fixture", "t", {T = t, farol = farol}))
  return f()
end

-- asserts that fn(...) raises an error whose message contains every pattern
-- (plain text)
function H.fails(fn, ...)
  local patterns = {...}
  return function(...)
    local ok, err = pcall(fn, ...)
    assert(not ok, "expected an error, the call succeeded")
    err = tostring(err)
    for _, p in ipairs(patterns) do
      if not err:find(p, 1, true) then
        error(string.format("error message %q does not contain %q", err, p), 2)
      end
    end
    return err
  end
end

-- Captum's SoftmaxModel(5, 20, 10)
function H.softmax_mlp()
  local nn = farol.nn
  return nn.Module{
    lin1 = nn.Linear(5, 20), lin2 = nn.Linear(20, 20), lin3 = nn.Linear(20, 10),
    forward = function(self, x)
      local h = self.lin1(x):relu()
      h = self.lin2(h):relu()
      return farol.softmax(self.lin3(h), 2)
    end,
  }
end

-- the fixtures' CNNs (CASES.md): cnn_small on 1 x 8 x 8, Captum's CIFAR CNN on 3 x 32 x 32
function H.cnn_small()
  local nn = farol.nn
  return nn.Sequential(nn.Conv2d(1, 4, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 10))
end

function H.cnn_cifar()
  local nn = farol.nn
  return nn.Sequential(
    nn.Conv2d(3, 32, 3, {padding = 1}), nn.ReLU(), nn.Conv2d(32, 32, 3, {padding = 1}), nn.ReLU(),
    nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, {padding = 1}), nn.ReLU(),
    nn.Conv2d(64, 64, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10), nn.Softmax(2))
end

return H
