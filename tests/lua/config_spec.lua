-- farol.config(): what farol runs on (BLAS kernel, oneDNN, own kernels, threads).
local farol = require("farol")
local H = require("helpers")

describe("farol.config", function()
  it("names the BLAS, its version and kernel, who chose it, and the thread count", function()
    local c = farol.config()
    assert.matches("^OpenBLAS ", c.blas)
    assert.matches("^%d+%.%d+%.%d+", c.blas_version)
    assert.matches(c.blas_core, c.blas, 1, true)   -- OpenBLAS's own description ends with it
    local user = os.getenv("OPENBLAS_CORETYPE")
    if user and user ~= "" then
      assert.equals("user (OPENBLAS_CORETYPE)", c.blas_core_chosen_by)
      assert.is_nil(c.blas_core_replaced)
    else
      assert.truthy(c.blas_core_chosen_by == "openblas" or c.blas_core_chosen_by == "farol")
    end
    assert.is_string(c.kernel_isa)
    assert.equals(farol.get_num_threads(), c.threads)
    assert.is_true(c.threads_in_use >= 1 and c.threads_in_use <= c.threads)
    if c.dnnl_version then assert.matches("^%d+%.%d+%.%d+$", c.dnnl_version); assert.is_string(c.dnnl_isa) end
  end)

  it("follows set_num_threads", function()
    local n = farol.get_num_threads()
    farol.set_num_threads(1)
    assert.equals(1, farol.config().threads)
    farol.set_num_threads(n)
  end)

  it("switches the fast convolutions and Winograd, and reports them", function()
    local c = farol.config()
    local env_off = (os.getenv("FAROL_NO_DNNL") or "0") ~= "0" and os.getenv("FAROL_NO_DNNL") ~= ""
    assert.equals(c.dnnl_version ~= nil and not env_off, c.fast_conv)
    assert.is_false(farol.config{fast_conv = false}.fast_conv)
    assert.equals(c.dnnl_version ~= nil, farol.config{fast_conv = true}.fast_conv)
    assert.is_false(farol.config{winograd = false}.winograd)
    assert.is_true(farol.config{winograd = true}.winograd)
    assert.is_false(farol.config{adaptive_threads = false}.adaptive_threads)
    assert.equals(farol.get_num_threads(), farol.config().threads_in_use)
    assert.is_true(farol.config{adaptive_threads = true}.adaptive_threads)
    farol.config{fast_conv = c.fast_conv}
    assert.equals(c.fast_conv, farol.config().fast_conv)
  end)

  it("gives the same convolution results with the fast path on and off", function()
    farol.manual_seed(5)
    local x, w, b = farol.randn(2, 16, 12, 10), farol.randn(32, 16, 3, 3), farol.randn(32)
    local was = farol.config().fast_conv
    local ys = {}
    for k, on in ipairs{false, true} do
      farol.config{fast_conv = on}
      local xg = x:clone():requires_grad(true)
      local y = farol.conv2d(xg, w, b, {padding = 1})
      ys[k] = {y, farol.grad(y:sum(), xg)}
    end
    farol.config{fast_conv = was}
    for i = 1, 2 do
      local d = (ys[1][i] - ys[2][i]):abs():max():item()
      assert.is_true(d < 1e-4, "difference " .. d)
    end
  end)

  it("switches the fast matrix products, and they agree with OpenBLAS's", function()
    local was = farol.config().fast_gemm
    local env_off = (os.getenv("FAROL_NO_DNNL") or "0") ~= "0" and os.getenv("FAROL_NO_DNNL") ~= ""
    assert.equals(farol.config().dnnl_version ~= nil and not env_off, was)
    assert.is_false(farol.config{fast_gemm = false}.fast_gemm)
    farol.manual_seed(6)
    local a, b = farol.randn(70, 300), farol.randn(300, 515)
    local ref = farol.matmul(a, b)
    assert.equals(farol.config().dnnl_version ~= nil, farol.config{fast_gemm = true}.fast_gemm)
    H.close(farol.matmul(a, b), ref, 1e-4, 1e-4, "fast matmul")
    farol.config{fast_gemm = was}
  end)

  -- the saliency of model at 1 and at 2 threads, bitwise, with the fast path
  -- `switch` (a farol.config key) off and on
  local function same_at_1_and_2_threads(what, model, x, target, switch)
    model:eval()
    local n, was = farol.get_num_threads(), farol.config()[switch]
    for _, fast in ipairs{false, true} do
      farol.config{[switch] = fast}
      local s = {}
      for t = 1, 2 do
        farol.set_num_threads(t)
        s[t] = farol.Saliency(model):attribute(x, target)
      end
      farol.set_num_threads(n)
      farol.config{[switch] = was}
      assert.equals(0, s[1]:ne(s[2]):sum():item(), what .. ", " .. switch .. " = " .. tostring(fast))
      assert.is_true(s[1]:abs():sum():item() > 0)
    end
  end

  -- OpenBLAS's own threading sums in another order at 2 threads (it cuts K
  -- into other blocks): farol's products must not depend on the count
  it("gives bitwise the same saliency at 1 and 2 threads on the MLP benchmark's shapes", function()
    local nn = farol.nn
    farol.manual_seed(7)
    local model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                                nn.Linear(1024, 10))
    local target = {}
    for i = 1, 128 do target[i] = (i - 1) % 10 + 1 end
    same_at_1_and_2_threads("mlp", model, farol.randn(128, 784), target, "fast_gemm")
  end)

  -- convolutions (oneDNN or im2col), batch_norm, max_pool2d, the residual
  -- adds and the linear head: none may depend on the thread count either,
  -- or adaptive threads would make results depend on the machine's load
  it("gives bitwise the same saliency at 1 and 2 threads on the CNN and ResNet-18", function()
    farol.manual_seed(8)
    same_at_1_and_2_threads("cnn", H.cnn_cifar(), farol.randn(16, 3, 32, 32), 3, "fast_conv")
    same_at_1_and_2_threads("resnet18", require("farol.models.resnet18")(10), farol.randn(2, 3, 64, 64),
                            {2, 9}, "fast_conv")
  end)

  it("gives conv2d's weight gradient bitwise the same at 1 and 2 threads", function()
    farol.manual_seed(9)
    local x, gy = farol.randn(16, 32, 32, 32), farol.randn(16, 32, 32, 32)
    local w = farol.randn(32, 32, 3, 3):requires_grad(true)
    local n = farol.get_num_threads()
    local dw = {}
    for t = 1, 2 do
      farol.set_num_threads(t)
      dw[t] = farol.grad((farol.conv2d(x, w, nil, {padding = 1}) * gy):sum(), w)
    end
    farol.set_num_threads(n)
    assert.equals(0, dw[1]:ne(dw[2]):sum():item())
    assert.is_true(dw[1]:abs():sum():item() > 0)
  end)

  it("refuses bad options", function()
    assert.has_error(function() farol.config(1) end, "farol: config: options must be a table, got number")
    assert.are.equal("table", type(farol.config(nil)))  -- nil: no options, as no argument
    assert.has_error(function() farol.config({}, 2) end,
                     "farol: config: takes at most one argument (an options table), got 2")
    assert.has_error(function() farol.config{fast = true} end,
                     "farol: config: unknown option 'fast' (valid: fast_conv, fast_gemm, winograd, adaptive_threads)")
    assert.has_error(function() farol.config{fast_conv = 1} end,
                     "farol: config: fast_conv must be a boolean, got number")
    -- nothing changes when one key is wrong
    local before = farol.config().winograd
    assert.has_error(function() farol.config{winograd = not before, bogus = 1} end)
    assert.equals(before, farol.config().winograd)
  end)
end)

describe("the farol runner", function()
  local runner = os.getenv("FAROL_RUNNER") or "build/farol"
  local function run(env)
    local p = assert(io.popen(env .. " OMP_DISPLAY_ENV=VERBOSE " .. runner
                              .. " -e 'print(\"policy=\" .. tostring(os.getenv(\"OMP_WAIT_POLICY\")))' 2>&1"))
    local out = p:read("a")
    p:close()
    return out
  end

  it("makes OpenMP spin briefly, then sleep, unless the user chose, and leaves the environment as it was", function()
    local out = run("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT")
    -- the last display is the one of the process that runs the script
    assert.equals("'1000'", out:match(".*GOMP_SPINCOUNT = ('%d+')"))
    assert.truthy(out:find("policy=nil", 1, true))
    out = run("env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=ACTIVE")
    assert.is_not.equals("'1000'", out:match(".*GOMP_SPINCOUNT = ('%d+')"))
    assert.truthy(out:find("policy=ACTIVE", 1, true))
    local p = assert(io.popen("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT " .. runner
                              .. " -e 'print(\"spin=\" .. tostring(os.getenv(\"GOMP_SPINCOUNT\")))' 2>&1"))
    local seen = p:read("a")
    p:close()
    assert.equals("spin=nil\n", seen)
  end)

  it("runs adaptive threads unless the script turns them off", function()
    local function adaptive(code)
      local p = assert(io.popen(runner .. " -e '" .. code .. "' 2>&1"))
      local out = p:read("a")
      p:close()
      return out
    end
    assert.equals("true\n", adaptive('print(require("farol").config().adaptive_threads)'))
    assert.equals("false\n",
                  adaptive('print(require("farol").config{adaptive_threads = false}.adaptive_threads)'))
  end)
end)
