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

describe("argument tables are read raw", function()
  -- a table whose metamethods free the tensor the call is working on
  local function evil(t, x)
    return setmetatable(t, {
      __index = function() x:free(); full_gc(); return 1 end,
      __len = function() x:free(); full_gc(); return 2 ^ 40 // 1 end,
    })
  end

  it("size tables of view, reshape, expand and creation functions", function()
    local x = farol.randn(2, 3)
    assert.same({3, 2}, x:view(evil({3, 2}, x)):size())
    assert.same({6}, x:reshape(evil({6}, x)):size())
    assert.same({2, 2, 3}, x:expand(evil({2, 2, 3}, x)):size())
    assert.same({2, 2}, farol.zeros(evil({2, 2}, x)):size())
    assert.same({3, 2}, x:permute(evil({2, 1}, x)):size())
    -- a size table with holes is read as the raw array says: no __index
    errors_with("farol: view: size 2 must be an integer, got nil", x.view, x, evil({6, nil, 1}, x))
  end)

  it("tensor lists of cat, stack and farol.grad", function()
    local a, b = farol.ones(2), farol.ones(3)
    local r = farol.cat(evil({a, b}, a))
    assert.same({5}, r:size())
    local p, q = farol.ones(2), farol.ones(2)
    assert.same({2, 2}, farol.stack(evil({p, q}, p)):size())
    local x = farol.randn(3):requires_grad(true)
    local y = (x * 3):sum()
    local g = farol.grad(evil({y}, x), evil({x}, y))
    for _, v in ipairs(g[1]:totable()) do assert.equal(3, v) end
  end)

  it("tensor lists that lie about their length are read by their raw length", function()
    local a = farol.ones(2)
    local list = setmetatable({a}, {__len = function() return 2 ^ 61 // 1 end})
    assert.same({2}, farol.cat(list):size())
    local big = setmetatable({}, {__len = function() return 2 ^ 61 // 1 end})
    errors_with("farol: cat: expects a non-empty array of tensors", farol.cat, big)
  end)

  it("options of conv and pool, with unknown keys named", function()
    local x, w = farol.randn(1, 1, 5, 5), farol.randn(1, 1, 3, 3)
    local opts = evil({stride = 2}, x)
    assert.same({1, 1, 2, 2}, farol.conv2d(x, w, nil, opts):size())
    assert.same({1, 1, 3, 2}, farol.conv2d(x, w, nil, {padding = evil({1, 0}, w), stride = 2}):size())
    assert.same({1, 1, 2, 2}, farol.max_pool2d(x, evil({2, 2}, x)):size())
    errors_with("farol: conv2d: unknown option 'strides'", farol.conv2d, x, w, nil, {strides = 2})
    errors_with("farol: max_pool2d: unknown option 'dilation'", farol.max_pool2d, x, 2, {dilation = 2})
  end)

  it("index tables of index_select, embedding and cross_entropy", function()
    local x = farol.randn(4, 3)
    assert.same({2, 3}, x:index_select(1, evil({1, 4}, x)):size())
    local w = farol.randn(5, 2)
    assert.same({2, 2}, farol.embedding(evil({1, 5}, w), w):size())
    local logits = farol.randn(2, 3)
    assert.same({}, farol.cross_entropy(logits, evil({1, 3}, logits)):size())
  end)
end)

describe("small UB and leaks", function()
  it("x:backward(x) does not make x its own gradient", function()
    local x = farol.ones(3):requires_grad(true)
    x:backward(x)
    assert.is_not_nil(x.grad)
    x.grad:fill_(5)  -- writes into the gradient, not into x
    assert.same({1, 1, 1}, x:totable())
    assert.same({5, 5, 5}, x.grad:totable())
  end)

  it("creation functions refuse arguments after the sizes and dtype", function()
    errors_with("farol: ones: unexpected argument #3 (a string)", farol.ones, 2, nil, "int64")
    errors_with("farol: zeros: unexpected argument #3 (a number)", farol.zeros, {2}, "int64", 5)
    errors_with("farol: full: unexpected argument #4", farol.full, {2}, 1, "float32", 1)
    errors_with("farol: arange: unexpected argument #5", farol.arange, 1, 5, 1, "int64", 2)
    errors_with("farol: eye: unexpected argument #3", farol.eye, 2, "float64", true)
    errors_with("farol: linspace: unexpected argument #5", farol.linspace, 0, 1, 3, nil, 1)
    errors_with("farol: tensor: unexpected argument #3", farol.tensor, {1}, "int64", 1)
    assert.equal("int64", farol.ones(2, "int64"):dtype())
    errors_with("string expected, got number", function() return farol.ones(2):to(5) end)
  end)

  it("re-requiring farol after package.loaded.farol = nil gives the full table", function()
    local saved = {}
    for k, v in pairs(package.loaded) do
      if type(k) == "string" and k:match("^farol") then saved[k] = v end
    end
    package.loaded.farol = nil
    local ok, f = pcall(require, "farol")
    -- the other specs go on with the farol they loaded
    for k in pairs(package.loaded) do
      if type(k) == "string" and k:match("^farol") then package.loaded[k] = nil end
    end
    for k, v in pairs(saved) do package.loaded[k] = v end
    assert(ok, tostring(f))
    assert.is_function(f.Saliency)
    assert.is_table(f.nn)
    assert.is_table(f.models)
    local sal = f.Saliency(function(x) return (x * 2):sum(2) end)
    assert.same({2, 3}, sal:attribute(f.randn(2, 3)):size())
  end)

  it("a foreign userdata given the tensor metatable is not a tensor", function()
    local mt = debug.getmetatable(farol.ones(1))
    local f = io.tmpfile()
    local fmt = debug.getmetatable(f)
    debug.setmetatable(f, mt)
    assert.is_false(farol.is_tensor(f))
    errors_with("farol.Tensor expected", function() return farol.exp(f) end)
    errors_with("farol: add: operand 2 must be a farol.Tensor or a number, got userdata",
                function() return farol.ones(2) + f end)
    local ok = pcall(function() return f:free() end)
    assert.is_false(ok)
    debug.setmetatable(f, fmt)
    f:close()
  end)

  it("foreign userdata with farol's private metatables are ignored by their finalizers", function()
    local reg = debug.getregistry()
    for _, name in ipairs({"farol.hold", "farol.dict"}) do
      if reg[name] then
        local f = io.tmpfile()
        local fmt = debug.getmetatable(f)
        debug.setmetatable(f, reg[name])
        reg[name].__gc(f)  -- what the GC would do
        debug.setmetatable(f, fmt)
        f:close()
      end
    end
  end)
end)

describe("the REPL", function()
  local runner = os.getenv("FAROL_RUNNER") or "build/farol"
  local function repl(input)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(input)
    f:close()
    local p = io.popen(runner .. " < " .. path .. " 2>&1")
    local out = p:read("a")
    local ok, _, code = p:close()
    os.remove(path)
    return out, ok, code
  end

  it("reports a __tostring that raises and goes on", function()
    local out, ok = repl('setmetatable({}, {__tostring = function() error("boom") end})\nprint("after")\n')
    assert.truthy(out:find("boom", 1, true), out)
    assert.truthy(out:find("after", 1, true), out)
    assert.falsy(out:find("PANIC", 1, true), out)
    assert.is_true(ok)
  end)

  it("runs a line longer than 4095 bytes as one chunk", function()
    local terms = {}
    for i = 1, 3000 do terms[i] = "1" end
    local line = table.concat(terms, "+")  -- 5999 bytes
    local out = repl(line .. "\n")
    assert.equal("3000\n", out)
    out = repl("x = " .. line .. "\nx\n")
    assert.equal("3000\n", out)
  end)
end)

describe("what the API fuzzer found", function()
  it("nn activations given a non-tensor raise a type error, not an index error", function()
    for _, name in ipairs({"ReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "ReLU6", "Hardswish", "Hardsigmoid"}) do
      errors_with("bad argument #1 to '[%w_.]+' %(farol.Tensor expected, got nil%)", farol.nn[name]())
    end
  end)

  it("nn.LayerNorm reads its shape raw (an endless __index does not hang it)", function()
    local shape = setmetatable({3}, {__index = function() return 1 end})
    local m = farol.nn.LayerNorm(shape)
    assert.same({3}, m.weight:size())
  end)

  it("farol.config(nil) is farol.config()", function()
    assert.is_table(farol.config(nil))
    errors_with("farol: config: options must be a table, got number", farol.config, 1)
  end)

  it("image.resize refuses an empty image", function()
    errors_with("farol: image.resize: the image is empty (0 x 4)", farol.image.resize, farol.zeros(2, 0, 4), 2)
    errors_with("farol: image.resize: the image is empty (0 x 4)", farol.image.resize, farol.zeros(2, 0, 4), {2, 2})
  end)

  -- with the GC collecting at nearly every allocation, a finalizer frees the
  -- tensor while totable, size and Saliency build their results
  it("totable, size and a Saliency target survive finalizers that free their tensor", function()
    collectgarbage("incremental", 0, 1000, 0)
    local ok, err = pcall(function()
      for _ = 1, 100 do
        local x = farol.randn(300, 2)  -- 301 tables made: the finalizer runs among them
        setmetatable({}, {__gc = function() x:free() end})
        local ok1, e1 = pcall(x.totable, x)
        assert(ok1 or tostring(e1):find("^farol: "), tostring(e1))
        local y = farol.randn(2, 3)
        setmetatable({}, {__gc = function() y:free() end})
        local ok2, e2 = pcall(y.size, y)
        assert(ok2 or tostring(e2):find("^farol: "), tostring(e2))
        local tg = farol.tensor({1, 2}, "int64")
        setmetatable({}, {__gc = function() tg:free() end})
        local sal = farol.Saliency(function(v) return v * 2 end)
        local ok3, e3 = pcall(sal.attribute, sal, farol.randn(2, 3), tg)
        assert(ok3 or tostring(e3):find("^farol: "), tostring(e3))
      end
    end)
    collectgarbage("incremental", 200, 100, 13)
    assert(ok, tostring(err))
  end)
end)

describe("farol's _helpers, reachable from Lua", function()
  it("_attr_target refuses an absurd example count without overflowing", function()
    errors_with("too many", farol._attr_target, "Saliency", {1, 2}, math.maxinteger, true)
  end)

  it("_listdir lists a directory", function()
    local names = farol._listdir(".")
    assert.is_table(names)
    local none, msg = farol._listdir("/nonexistent/dir")
    assert.is_nil(none)
    assert.is_string(msg)
  end)
end)
