-- farol.load and farol.save: every file dtype PyTorch and numpy write,
-- against tests/fixtures/io (made by tests/tools/make_io_fixtures.py), and
-- round trips through both formats.
local farol = require("farol")
local H = require("helpers")

local loads_as = {float32 = "float32", float64 = "float64", int64 = "int64", float16 = "float32",
                  bfloat16 = "float32", int32 = "int64", int16 = "int64", int8 = "int64",
                  uint8 = "int64", bool = "float32"}

-- same shape, same dtype, every element equal (int64 compared as integers)
local function same(got, exp, what)
  assert.same(exp:size(), got:size(), what)
  assert.equals(exp:dtype(), got:dtype(), what)
  local g, e = got:reshape(-1), exp:reshape(-1)
  for i = 1, g:numel() do
    if g[i] ~= e[i] then error(string.format("%s: element %d is %s, expected %s", what, i, g[i], e[i]), 2) end
  end
end

local tmp = os.tmpname()
teardown(function()
  os.remove(tmp)
  for _, ext in ipairs({".safetensors", ".npy", "2.npy"}) do os.remove(tmp .. ext) end
end)

describe("farol.load", function()
  local t, meta, stored = H.load("io/dtypes.safetensors")

  it("converts each safetensors dtype: halves to float32, integers to int64, bool to a 0/1 mask", function()
    assert.same({}, meta)
    for name, as in pairs(loads_as) do
      assert.equals(name, stored[name], name)
      assert.equals(as, t[name]:dtype(), name)
      local exp = t[name .. ".expect"]
      same(t[name], as == "int64" and exp or exp:to(as), name)
    end
    assert.equals("float64", stored["float16.expect"])
    assert.equals("int64", stored["int8.expect"])
    -- the extremes survive: int32's minimum, uint8's 255, float16's largest
    assert.equals(-2147483648, t.int32[1][2])
    assert.equals(255, t.uint8[1][1])
    assert.equals(65504, t.float16[2][2])
  end)

  it("reads numpy's .npy files of every dtype, with the stored dtype as third value", function()
    for name, as in pairs(loads_as) do
      if name ~= "bfloat16" then
        local x, none, st = H.load("io/npy/" .. name .. ".npy")
        assert.is_nil(none)
        assert.equals(name, st)
        same(x, t[name], name .. ".npy")
      end
    end
    local f, _, st = H.load("io/npy/float16_fortran.npy")
    assert.equals("float16", st)
    same(f, t.float16, "Fortran-order float16")
    local u16, _, s16 = H.load("io/npy/uint16.npy")
    local u32, _, s32 = H.load("io/npy/uint32.npy")
    assert.equals("uint16", s16)
    assert.equals("uint32", s32)
    same(u16, farol.tensor({{65535, 0, 1}, {2, 3, 4}}, "int64"), "uint16")
    same(u32, farol.tensor({{4294967295, 0, 1}, {2, 3, 4}}, "int64"), "uint32")
  end)
end)

describe("farol.save", function()
  local t = H.load("io/dtypes.safetensors")
  local src = t["rounding.src"]

  it("writes float16 and bfloat16 rounded as PyTorch rounds them", function()
    local path = tmp .. ".safetensors"
    for _, case in ipairs({{"float16", "rounding.f16"}, {"bfloat16", "rounding.bf16"}}) do
      farol.save(path, {v = src, d = src:to("float64"), i = farol.tensor({1, 2}, "int64")}, {dtype = case[1]})
      local back, _, stored = farol.load(path)
      assert.same({v = case[1], d = case[1], i = "int64"}, stored)
      same(back.v, t[case[2]], case[1])
      same(back.d, t[case[2]], case[1] .. " from float64")
      same(back.i, farol.tensor({1, 2}, "int64"), "int64 is kept")
    end
    farol.save(tmp .. ".npy", src, {dtype = "float16"})
    local back, _, st = farol.load(tmp .. ".npy")
    assert.equals("float16", st)
    same(back, t["rounding.f16"], "float16 .npy")
  end)

  it("keeps NaN a NaN in float16 and bfloat16, with its sign", function()
    local nan = farol.tensor({0 / 0, -(0 / 0), 1})
    for _, dt in ipairs({"float16", "bfloat16"}) do
      farol.save(tmp .. ".safetensors", {v = nan}, {dtype = dt})
      local v = farol.load(tmp .. ".safetensors").v
      assert.is_true(v[1] ~= v[1] and v[2] ~= v[2], dt)
      assert.equals(1, v[3], dt)
    end
  end)

  it("writes .npy from a bare tensor or a one-entry table, any layout, and reads it back", function()
    local cases = {t.float32, t.float64, t.int64, farol.tensor(2.5), farol.zeros(0, 3),
                   t.float32:t(), farol.arange(0, 24):view(2, 3, 4):permute(3, 1, 2)}
    for i, x in ipairs(cases) do
      farol.save(tmp .. ".npy", x)
      local back, _, st = farol.load(tmp .. ".npy")
      assert.equals(x:dtype(), st)
      same(back, x, "case " .. i)
      farol.save(tmp .. "2.npy", {only = x})
      same(farol.load(tmp .. "2.npy"), x, "case " .. i .. " in a table")
    end
    farol.save(tmp .. ".npy", t.float64, {dtype = "float32"})
    same(farol.load(tmp .. ".npy"), t.float64:to("float32"), "float64 as float32")
  end)

  it("writes .npy files numpy reads: version 1.0, header padded to 64 bytes", function()
    farol.save(tmp .. ".npy", farol.ones(2, 3))
    local f = assert(io.open(tmp .. ".npy", "rb"))
    local bytes = f:read("a")
    f:close()
    assert.equals("\147NUMPY\1\0", bytes:sub(1, 8))
    local hlen = string.unpack("<I2", bytes, 9)
    assert.equals(0, (10 + hlen) % 64)
    assert.equals("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                  bytes:sub(11, 10 + hlen):match("^(.-)%s*$"))
    assert.equals("\n", bytes:sub(10 + hlen, 10 + hlen))
    assert.equals(10 + hlen + 24, #bytes)
  end)

  it("keeps metadata and chooses the format by extension", function()
    local path = tmp .. ".safetensors"
    farol.save(path, {a = t.int16}, {metadata = {k = "v"}})
    local back, meta = farol.load(path)
    assert.same({k = "v"}, meta)
    same(back.a, t.int16, "int16 saved as int64")
    local f = assert(io.open(path, "rb"))
    local head = f:read(8)
    f:close()
    assert.is_true(string.unpack("<I8", head) < 1000)  -- a safetensors header length, not npy magic
  end)
end)
