-- Writes through views that share memory, the accounting of views, and
-- inputs that could hang or grow without bound: special files given to
-- farol.load, module graphs with cycles or shared children.
local farol = require("farol")
local H = require("helpers")
local nn = farol.nn

local function values(t) return table.concat(t:totable(), " ") end

describe("copy_ between views of one storage", function()
  it("shifts right and left as a copy through a temporary would", function()
    local x = farol.arange(0, 10)
    x:narrow(1, 2, 8):copy_(x:narrow(1, 1, 8))
    assert.equals("0.0 0.0 1.0 2.0 3.0 4.0 5.0 6.0 7.0 9.0", values(x))
    x = farol.arange(0, 10)
    x:narrow(1, 1, 8):copy_(x:narrow(1, 3, 8))
    assert.equals("2.0 3.0 4.0 5.0 6.0 7.0 8.0 9.0 8.0 9.0", values(x))
  end)

  it("transposes in place, and copies a row onto the next across dtypes' views", function()
    local x = farol.arange(0, 9):view(3, 3)
    x:copy_(x:t())
    H.close(x, farol.arange(0, 9):view(3, 3):t(), 0, 0, "x after x:copy_(x:t())")
    local y = farol.arange(0, 6):view(2, 3)
    y[2] = y[1]
    assert.equals("0.0 1.0 2.0 0.0 1.0 2.0", values(y:reshape(-1)))
  end)

  it("copies from an expanded view of the same storage", function()
    local x = farol.arange(1, 5)                       -- 1 2 3 4
    x:narrow(1, 2, 3):copy_(x:narrow(1, 1, 1):expand(3))
    assert.equals("1.0 1.0 1.0 1.0", values(x))
  end)
end)

describe("writes into expanded views", function()
  local msg = "cannot write into a tensor whose elements share memory (dim 1 of shape [3, 2] is expanded)"
  local function e() return farol.zeros(1, 2):expand(3, 2) end
  it("are refused by copy_, fill_ and zero_, and leave the storage alone", function()
    local x = e()
    H.fails(function() x:copy_(farol.ones(3, 2)) end, "farol: copy_: " .. msg, "clone() it first")()
    H.fails(function() x:fill_(1) end, "farol: fill_: " .. msg)()
    H.fails(function() x:zero_() end, msg)()
    H.fails(function() farol.zeros(2):expand(4, 3, 2):fill_(1) end, "dim 1 of shape [4, 3, 2]")()
    assert.equals(0, x:sum():item())
  end)

  it("are allowed into one element or a row that is not itself expanded", function()
    local base = farol.zeros(1, 2)
    local x = base:expand(3, 2)
    x[2] = farol.tensor({5, 6})                     -- the one row all three read
    assert.equals("5.0 6.0", values(base:reshape(-1)))
    x:set(7, 3, 1)
    assert.equals(7, base:get(1, 1))
    farol.zeros(1):expand(1):fill_(2)              -- size 1: no two elements alias
    farol.zeros(0, 1):expand(0, 4):fill_(2)        -- no element at all
  end)
end)

describe("expand", function()
  it("keeps to the element limit, so numel cannot overflow", function()
    H.fails(function() return farol.zeros(1):expand(2^40, 2^40) end,
            "farol: expand: shape [1099511627776, 1099511627776] has too many elements (at most 2^40)")()
    H.fails(function() return farol.zeros(1, 1):expand(2^31, 2^31) end, "too many elements")()
    local x = farol.zeros(1):expand(2^20, 2^20)     -- 2^40: at the limit
    assert.equals(2^40, x:numel())
  end)
end)

describe("memory accounting of views", function()
  local function held() return select(2, farol.memory()) end
  it("charges a view by the storage it spans, not its numel", function()
    local one = farol.zeros(1)
    local before = held()
    local x = one:expand(2^20, 2^20)               -- 4 bytes read as 2^40 elements
    assert.equals(4, held() - before)
    local base = farol.zeros(256, 256)
    before = held()
    local row, t, col = base[2], base:t(), base:select(2, 3)
    assert.equals(256 * 4 + 256 * 256 * 4 + (255 * 256 + 1) * 4, held() - before)
    before = held()
    local e = farol.zeros(0, 3)
    assert.equals(0, held() - before)
    x, row, t, col, e, one = nil, nil, nil, nil, nil, nil
  end)
end)

describe("farol.load of files that are not regular", function()
  local dir = os.tmpname() .. "_farol_special"
  setup(function() os.execute("mkdir -p '" .. dir .. "'") end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("refuses a FIFO at once instead of waiting for a writer", function()
    for _, name in ipairs({"fifo.safetensors", "fifo.npy"}) do
      local path = dir .. "/" .. name
      assert(os.execute("mkfifo '" .. path .. "'"), "mkfifo failed")
      local t0 = farol.clock()
      H.fails(function() return farol.load(path) end,
              "farol: load: " .. path .. ": not a regular file (a FIFO)")()
      assert.is_true(farol.clock() - t0 < 5)
    end
  end)

  it("refuses a FIFO as an image too", function()
    local path = dir .. "/fifo.png"
    assert(os.execute("mkfifo '" .. path .. "'"), "mkfifo failed")
    H.fails(function() return farol.image.load(path) end,
            "farol: image.load: " .. path .. ": not a regular file (a FIFO)")()
  end)

  it("refuses a directory and a device", function()
    H.fails(function() return farol.load(dir) end, "farol: load: " .. dir .. ": not a regular file (a directory)")()
    H.fails(function() return farol.load("/dev/null") end, "not a regular file (a device)")()
  end)
end)

describe("module graphs with cycles and shared children", function()
  local function keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return table.concat(out, " ")
  end
  local function names(iter)
    local out = {}
    for n in iter do out[#out + 1] = n end
    return table.concat(out, " ")
  end

  it("walks a graph where a child points back at its parent once", function()
    local m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm2d(3))
    m["0"].parent = m                 -- a cycle: 0 -> parent -> 0 -> ...
    m["1"].self_ref = m["1"]          -- and a module that is its own child
    assert.equals(4, #m:parameters())
    assert.equals("0.weight 0.bias 1.weight 1.bias", names(m:named_parameters()))
    assert.equals("1.running_mean 1.running_var 1.num_batches_tracked", names(m:named_buffers()))
    local sd = m:state_dict()
    assert.equals("0.bias 0.weight 1.bias 1.num_batches_tracked 1.running_mean 1.running_var 1.weight",
                  keys(sd))
    local r = m:load_state_dict(sd)
    assert.equals(0, #r.missing + #r.unexpected)
    m:eval()
    assert.is_false(m.training or m["0"].training or m["1"].training)
    m:train()
    assert.is_true(m.training and m["0"].training and m["1"].training)
    m:to("float64")
    assert.equals("float64", m["0"].weight:dtype())
    m:zero_grad()
    assert.is_truthy(tostring(m):find("(parent): <cycle>", 1, true))
  end)

  it("lists a shared module's parameters once, and its state under each name, as PyTorch", function()
    local lin = nn.Linear(2, 2)
    local s = nn.Sequential(lin, lin)
    assert.equals("0.weight 0.bias", names(s:named_parameters()))
    assert.equals(2, #s:parameters())
    assert.equals("0.bias 0.weight 1.bias 1.weight", keys(s:state_dict()))
    local src = {["0.weight"] = farol.ones(2, 2), ["0.bias"] = farol.ones(2),
                 ["1.weight"] = farol.full({2, 2}, 2), ["1.bias"] = farol.full({2}, 2)}
    s:load_state_dict(src)               -- both names reach one tensor: the last copy wins
    assert.equals(8, lin.weight:sum():item())
  end)

  it("refuses a graph with too many paths for a state_dict, instead of growing without bound", function()
    local m = nn.Linear(1, 1)
    for _ = 1, 30 do m = nn.Sequential(m, m) end   -- 2^30 paths to the Linear
    assert.equals(2, #m:parameters())
    H.fails(function() return m:state_dict() end, "farol: state_dict: the module graph has over 1000000 paths")()
    m:eval()
    assert.is_false(m["0"].training)
  end)
end)
