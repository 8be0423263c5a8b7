-- Memory safety from Lua: code that runs while farol holds tensors (a
-- forward, metamethods of argument tables, the GC) must not leave C with
-- dangling pointers; counts read from Lua are range-checked; small UB and
-- leaks.  These run under ASan+UBSan in scripts/test, where a use-after-free
-- is a crash rather than a silent pass.
local farol = require("farol")

local function errors_with(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern, 1, true) or tostring(err):find(pattern),
         "error was: " .. tostring(err))
  return err
end

local function full_gc() collectgarbage(); collectgarbage() end

describe("Saliency holds its tensors while the forward runs", function()
  -- d(sum(2 * x, dim 2))/dx = 2 everywhere
  local function check(attr, shape)
    assert.same(shape, attr:size())
    for _, v in ipairs(attr:reshape(-1):totable()) do assert.equal(2, v) end
  end

  it("survives a forward that drops the inputs array entry and collects", function()
    local ins = {farol.randn(3, 4)}
    local sal = farol.Saliency(function(x)
      ins[1] = nil
      full_gc()
      return (x * 2):sum(2)
    end)
    local a = sal:attribute(ins)
    check(a[1], {3, 4})
  end)

  it("survives a forward that frees its input tensor", function()
    local y = farol.randn(3, 4)
    local sal = farol.Saliency(function(x)
      y:free()
      full_gc()
      return (x * 2):sum(2)
    end)
    check(sal:attribute(y), {3, 4})
  end)

  it("survives a forward that frees every input of several", function()
    local a, b = farol.randn(2, 3), farol.randn(2, 5)
    local ins = {a, b}
    local sal = farol.Saliency(function(x1, x2)
      a:free(); b:free(); ins[1], ins[2] = nil, nil
      full_gc()
      return (x1 * 2):sum(2) + (x2 * 2):sum(2)
    end)
    local r = sal:attribute(ins)
    check(r[1], {2, 3})
    check(r[2], {2, 5})
  end)

  it("reads the inputs and target arrays raw: metamethods are not called", function()
    local called = false
    local mt = {__index = function() called = true; return farol.ones(2, 2) end,
                __len = function() called = true; return 5 end}
    local ins = setmetatable({farol.randn(2, 4)}, mt)
    local sal = farol.Saliency(function(x) return x * 2 end)
    local t = setmetatable({1, 2}, mt)
    local r = sal:attribute(ins, t)
    assert.same({2, 4}, r[1]:size())
    assert.is_false(called)
  end)

  it("range-checks additional_forward_args.n", function()
    local sal = farol.Saliency(function(x, ...) return (x * 2):sum(2) end)
    local x = farol.randn(2, 3)
    errors_with("farol: Saliency: additional_forward_args.n must be an integer from 0 to 4096, got -3",
                sal.attribute, sal, x, nil, nil, {n = -3})
    errors_with("got 4294967296", sal.attribute, sal, x, nil, nil, {n = 2 ^ 32 // 1})
    errors_with("got 1.5", sal.attribute, sal, x, nil, nil, {n = 1.5})
    errors_with("got string", sal.attribute, sal, x, nil, nil, {n = "2"})
    -- the C entry point checks the packed count too
    errors_with("farol: Saliency: additional_forward_args.n must be an integer from 0 to 4096, got -1",
                farol._saliency, function(v) return v end, x, nil, nil, {n = -1})
    -- n larger than #args passes nils
    local seen
    local s2 = farol.Saliency(function(v, a, b, c) seen = {a, b, c}; return (v * 2):sum(2) end)
    s2:attribute(x, nil, nil, {n = 3, 7})
    assert.same({7}, seen)
  end)

  it("reads an int64 target tensor beyond 2^53 exactly (out of range, not a wrapped index)", function()
    local sal = farol.Saliency(function(x) return x * 2 end)
    local big = farol.tensor({math.maxinteger}, "int64")
    errors_with("target index 9223372036854775807 is out of range", sal.attribute, sal,
                farol.randn(1, 3), big)
  end)
end)
