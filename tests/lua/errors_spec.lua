-- Bad calls across the whole Lua API: each raises an error that starts with
-- "farol: <function>: " (or is Lua's own "bad argument #k to 'f'" from the
-- luaL_check* helpers) and names the argument and the shapes or values at
-- fault.  Calls that could write into a tensor leave it as it was.
local farol = require("farol")
local H = require("helpers")
local nn, F = farol.nn, farol.nn.functional

-- One bad call per `it`: fn() must raise an error containing every pattern
-- (plain text), and the message must start with "farol: " unless it is Lua's
-- own argument error.
local function bad(desc, fn, ...)
  local patterns = {...}
  it(desc, function()
    local err = H.fails(fn, table.unpack(patterns))()
    assert(err:find("^farol: ") or err:find("bad argument #%d+ to '"),
           "message does not start with \"farol: \": " .. err)
  end)
end

-- A bad call that gets a tensor to write into: make() builds the tensor,
-- call(t) fails with the patterns, and t keeps its shape and values.
local function keeps(desc, make, call, ...)
  local patterns = {...}
  it(desc, function()
    local t = make()
    local before = farol.no_grad(function() return t:detach():clone() end)
    H.fails(function() call(t) end, table.unpack(patterns))()
    H.close(t, before, 0, 0, "the tensor after the failing call")
  end)
end

local function nested(depth)
  local t = 1
  for _ = 1, depth do t = {t} end
  return t
end

local write_file = H.write_file

-- a safetensors file with a hand-written header and data
local function safetensors_file(path, header, data)
  return write_file(path, string.pack("<I8", #header) .. header .. data)
end

local tmp = os.tmpname()
os.remove(tmp)

local x = farol.ones(2, 3)
local x3 = farol.ones(2, 3, 4)
local v4 = farol.arange(4)
local i64 = farol.arange(4, "int64")
local img = farol.ones(1, 3, 8, 8)
local w3 = farol.ones(4, 3, 3, 3)

describe("tensor creation", function()
  bad("farol.tensor refuses a ragged array", function() return farol.tensor({{1, 2}, {3}}) end,
      "farol: tensor: ragged array", "length 2 at depth 2", "[2, 2]")
  bad("farol.tensor refuses a number where an array was expected",
      function() return farol.tensor({{1, 2}, 3}) end, "farol: tensor: ragged array", "at depth 2")
  bad("farol.tensor refuses an array where a number was expected",
      function() return farol.tensor({1, {2}}) end, "farol: tensor:", "expected a number at depth 2, got table")
  bad("farol.tensor refuses a string element", function() return farol.tensor({1, "a"}) end,
      "farol: tensor:", "got string")
  bad("farol.tensor refuses a string first element", function() return farol.tensor({"a"}) end,
      "farol: tensor: expected a number or a nested array of numbers, got string")
  bad("farol.tensor refuses a tensor inside an array", function() return farol.tensor({x}) end,
      "farol: tensor: expected a number or a nested array of numbers, got userdata")
  bad("farol.tensor refuses a hole", function() return farol.tensor({1, nil, 3}) end,
      "farol: tensor:", "got nil")
  bad("farol.tensor refuses rows of different lengths after an empty one",
      function() return farol.tensor({{}, {1}}) end, "farol: tensor: ragged array", "[2, 0]")
  bad("farol.tensor refuses nesting deeper than 8 dims", function() return farol.tensor(nested(9)) end,
      "farol: tensor: nested deeper than 8 dims")
  bad("farol.tensor refuses a table that contains itself", function()
    local t = {}
    t[1] = t
    return farol.tensor(t)
  end, "farol: tensor: nested deeper than 8 dims")
  bad("farol.tensor refuses a string", function() return farol.tensor("abc") end,
      "bad argument #1", "number or array expected, got string")
  bad("farol.tensor refuses no argument", function() return farol.tensor() end,
      "bad argument #1", "got no value")
  bad("farol.tensor refuses a non-integer for int64", function() return farol.tensor({1, 1.5}, "int64") end,
      "farol: tensor: 1.5 is not an integer (dtype int64)")
  bad("farol.tensor refuses NaN for int64", function() return farol.tensor({0 / 0}, "int64") end,
      "farol: tensor:", "nan is not an integer (dtype int64)")
  bad("farol.tensor refuses a value beyond int64", function() return farol.tensor({1e30}, "int64") end,
      "farol: tensor: 1e+30 is not an integer (dtype int64)")
  bad("farol.tensor refuses an unknown dtype", function() return farol.tensor({1}, "float16") end,
      "farol: tensor: unknown dtype float16")
  bad("farol.tensor refuses a dtype that is not a string", function() return farol.tensor({1}, 5) end,
      "farol: tensor: unknown dtype 5")
  bad("farol.tensor(t, dtype) refuses an unknown dtype", function() return farol.tensor(x, "half") end,
      "farol: tensor: unknown dtype half")

  bad("zeros refuses a negative size", function() return farol.zeros(2, -1) end,
      "farol: zeros: size 2 is -1; sizes must be non-negative")
  bad("zeros refuses a non-integer size", function() return farol.zeros(2.5) end,
      "farol: zeros: size 1 must be an integer, got number")
  bad("zeros refuses a non-integer size in an array", function() return farol.zeros({2, 1.5}) end,
      "farol: zeros: size 2 must be an integer, got number")
  bad("zeros refuses a string size in an array", function() return farol.zeros({2, "a"}) end,
      "farol: zeros: size 2 must be an integer, got string")
  bad("zeros refuses an unknown dtype", function() return farol.zeros(2, "half") end,
      "farol: zeros: unknown dtype half")
  bad("zeros refuses a shape with too many elements", function() return farol.zeros(1000000000, 1000000000) end,
      "farol: zeros: shape [1000000000, 1000000000] has too many elements")
  bad("zeros refuses the largest integer as a size", function() return farol.zeros(math.maxinteger) end,
      "farol: zeros: shape [9223372036854775807] has too many elements")
  bad("zeros refuses sizes whose product overflows", function() return farol.zeros(1 << 62, 4) end,
      "farol: zeros:", "has too many elements")
  bad("zeros refuses an empty shape whose other sizes overflow", function() return farol.zeros(1 << 62, 1 << 62, 0) end,
      "farol: zeros:", "has too many elements")
  bad("zeros refuses more than 8 sizes", function() return farol.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end,
      "farol: zeros: more than 8 sizes given")
  bad("zeros refuses an array of more than 8 sizes", function() return farol.zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}) end,
      "farol: zeros: 9 sizes given, at most 8 dims")
  bad("ones refuses a negative size", function() return farol.ones(-3) end,
      "farol: ones: size 1 is -3")
  bad("empty refuses a negative size in an array", function() return farol.empty({-3}) end,
      "farol: empty: size 1 is -3")
  bad("rand refuses a negative size", function() return farol.rand(2, -2) end,
      "farol: rand: size 2 is -2")
  bad("rand refuses int64", function() return farol.rand(2, "int64") end,
      "farol: rand: dtype must be float32 or float64, got int64")
  bad("randn refuses int64", function() return farol.randn(2, "int64") end,
      "farol: randn: dtype must be float32 or float64, got int64")
  bad("full needs an array of sizes", function() return farol.full(3, 1) end,
      "bad argument #1", "table expected, got number")
  bad("full needs a value", function() return farol.full({3}) end,
      "bad argument #2", "number expected, got no value")
  bad("full refuses a negative size", function() return farol.full({-3}, 1) end,
      "farol: full: size 1 is -3")
  bad("full refuses an unknown dtype", function() return farol.full({3}, 1, "x") end,
      "farol: full: unknown dtype x")
  bad("full refuses a non-integer value for int64", function() return farol.full({3}, 1.5, "int64") end,
      "farol: full: 1.5 is not an integer (dtype int64)")
  bad("full refuses NaN for int64", function() return farol.full({3}, 0 / 0, "int64") end,
      "farol: full:", "nan is not an integer (dtype int64)")
  bad("full refuses a shape with too many elements", function() return farol.full({1 << 40, 2}, 0) end,
      "farol: full: shape [1099511627776, 2] has too many elements")
  bad("arange refuses a zero step", function() return farol.arange(0, 5, 0) end,
      "farol: arange: step must be non-zero and bounds finite")
  bad("arange refuses an infinite bound", function() return farol.arange(0, math.huge) end,
      "farol: arange: step must be non-zero and bounds finite")
  bad("arange refuses too many elements", function() return farol.arange(0, 1e18) end,
      "farol: arange: 1e+18 elements is too many")
  bad("arange refuses a string bound", function() return farol.arange("a") end,
      "bad argument #1", "number expected, got string")
  bad("arange refuses an unknown dtype", function() return farol.arange(0, 3, 1, "int8") end,
      "farol: arange: unknown dtype int8")
  bad("linspace refuses a negative count", function() return farol.linspace(0, 1, -1) end,
      "farol: linspace: n must be between 0 and 2^34, got -1")
  bad("eye refuses a negative size", function() return farol.eye(-1) end,
      "farol: eye: n must be non-negative, got -1")
  bad("eye refuses a size whose square is too large", function() return farol.eye(1 << 40) end,
      "farol: eye: shape [1099511627776, 1099511627776] has too many elements")
end)

describe("indexing and element access", function()
  bad("x[0] is out of range (indices are 1-based)", function() return v4[0] end,
      "farol: index: index 0 is out of range for a dim of size 4 (1-based)")
  bad("x[5] on size 4 is out of range", function() return v4[5] end,
      "farol: index: index 5 is out of range for a dim of size 4")
  bad("x[-5] on size 4 is out of range", function() return v4[-5] end,
      "farol: index: index -5 is out of range for a dim of size 4")
  bad("x[3] on a 2 x 3 tensor is out of range", function() return x[3] end,
      "farol: index: index 3 is out of range for a dim of size 2")
  bad("x[math.mininteger] is out of range", function() return x[math.mininteger] end,
      "farol: index: index -9223372036854775808 is out of range for a dim of size 2")
  bad("a 0-d tensor cannot be indexed", function() return farol.tensor(3)[1] end,
      "farol: index: a 0-d tensor cannot be indexed")
  bad("x[1.5] is not an integer index", function() return v4[1.5] end,
      "bad argument #2 to 'index'", "number has no integer representation")
  bad("x:get with too few indices", function() return x:get(1) end,
      "farol: get: 1 indices given for a tensor of shape [2, 3]")
  bad("x:get with too many indices", function() return x:get(1, 1, 1) end,
      "farol: get: 3 indices given for a tensor of shape [2, 3]")
  bad("x:get out of range in dim 1", function() return x:get(3, 1) end,
      "farol: get: index 3 is out of range for a dim of size 2")
  bad("x:get with index 0", function() return x:get(1, 0) end,
      "farol: get: index 0 is out of range for a dim of size 3")
  bad("x:get with the largest integer", function() return x:get(math.maxinteger, 1) end,
      "farol: get: index 9223372036854775807 is out of range")
  bad("x:get with a string index", function() return x:get(1, "a") end,
      "bad argument #2 to 'get'", "number expected, got string")
  bad("#x of a 0-d tensor", function() return #farol.tensor(1) end,
      "farol: #: a 0-d tensor has no length")
  bad("x:item on 6 elements", function() return x:item() end,
      "farol: item: tensor of shape [2, 3] has 6 elements, item needs exactly one")
  bad("x:size with dim 3 of a 2-d tensor", function() return x:size(3) end,
      "farol: size: dim 3 is out of range for a 2-d tensor")
  bad("x:size with dim 0", function() return x:size(0) end,
      "farol: size: dim 0 is out of range for a 2-d tensor")
  bad("x:to an unknown dtype", function() return x:to("float16") end,
      "farol: to: unknown dtype float16")
  bad("x:to without a dtype", function() return x:to() end,
      "bad argument #1 to 'to'", "string expected, got no value")
  bad("x.foo = 1 assigns with a string key", function() v4.foo = 1 end,
      "farol: index: tensors take only integer keys for assignment, got string 'foo'")

  local function ones23() return farol.ones(2, 3) end
  local function ints() return farol.arange(1, 4, "int64") end
  local function leaf() return farol.ones(2, 3):requires_grad(true) end
  keeps("x:set out of range", ones23, function(t) t:set(5, 3, 1) end,
        "farol: set: index 3 is out of range for a dim of size 2")
  keeps("x:set with too few indices", ones23, function(t) t:set(5, 1) end,
        "farol: set: 1 indices given for a tensor of shape [2, 3]")
  keeps("x:set with a string value", ones23, function(t) t:set("a", 1, 1) end,
        "bad argument #1 to 'set'", "number expected, got string")
  keeps("x:set of a non-integer into int64", ints, function(t) t:set(1.5, 1) end,
        "farol: set: 1.5 is not an integer (dtype int64)")
  keeps("x:set of NaN into int64", ints, function(t) t:set(0 / 0, 2) end,
        "farol: set:", "nan is not an integer (dtype int64)")
  keeps("x:set on a tensor that requires a gradient", leaf, function(t) t:set(5, 1, 1) end,
        "farol: set: cannot modify in place a tensor that requires a gradient")
  keeps("x[i] = a string", ones23, function(t) t[1] = "a" end,
        "bad argument #3 to 'newindex'", "number or farol.Tensor expected, got string")
  keeps("x[i] = an array", ones23, function(t) t[1] = {1, 2, 3} end,
        "bad argument #3 to 'newindex'", "got table")
  keeps("x[i] = v out of range", ones23, function(t) t[3] = 0 end,
        "farol: index: index 3 is out of range for a dim of size 2")
  keeps("x[0] = v", ones23, function(t) t[0] = 0 end,
        "farol: index: index 0 is out of range for a dim of size 2")
  keeps("x[i] = a tensor that does not broadcast", ones23, function(t) t[1] = farol.zeros(4) end,
        "farol: copy_: source of shape [4] does not broadcast to [3]")
  keeps("x[i] = infinity into int64", ints, function(t) t[1] = math.huge end,
        "farol: index: inf is not an integer (dtype int64)")
  keeps("x[i] = v on a tensor that requires a gradient", leaf, function(t) t[1] = 0 end,
        "farol: fill_: cannot modify in place a tensor that requires a gradient")
  keeps("x[i] = tensor on a tensor that requires a gradient", leaf, function(t) t[1] = farol.zeros(3) end,
        "farol: copy_: cannot modify in place a tensor that requires a gradient")
  keeps("x:copy_ from a shape that does not broadcast", ones23, function(t) t:copy_(farol.zeros(3, 2)) end,
        "farol: copy_: source of shape [3, 2] does not broadcast to [2, 3]")
  keeps("x:copy_ from a trailing size that does not match", ones23, function(t) t:copy_(farol.zeros(2)) end,
        "farol: copy_: source of shape [2] does not broadcast to [2, 3]")
  keeps("x:copy_ from a number", ones23, function(t) t:copy_(3) end,
        "bad argument #1 to 'copy_'", "farol.Tensor expected, got number")
  keeps("x:copy_ into a tensor that requires a gradient", leaf, function(t) t:copy_(farol.zeros(2, 3)) end,
        "farol: copy_: cannot modify in place a tensor that requires a gradient")
  keeps("x:fill_ with a string", ones23, function(t) t:fill_("a") end,
        "bad argument #1 to 'fill_'", "number expected, got string")
  keeps("x:fill_ of a non-integer into int64", ints, function(t) t:fill_(1.5) end,
        "farol: fill_: 1.5 is not an integer (dtype int64)")
  keeps("x:fill_ of a value beyond int64", ints, function(t) t:fill_(1e30) end,
        "farol: fill_: 1e+30 is not an integer (dtype int64)")
  keeps("x:fill_ on a tensor that requires a gradient", leaf, function(t) t:fill_(2) end,
        "farol: fill_: cannot modify in place a tensor that requires a gradient")
  keeps("x:zero_ on a tensor that requires a gradient", leaf, function(t) t:zero_() end,
        "farol: fill_: cannot modify in place a tensor that requires a gradient")
end)

describe("views", function()
  bad("view with a size product that does not match", function() return x:view(4) end,
      "farol: view: shape [4] is invalid for a tensor of shape [2, 3] (6 elements)")
  bad("view with two -1", function() return x:view(-1, -1) end,
      "farol: view: only one size may be -1, got [-1, -1]")
  bad("view with a -1 that cannot be inferred", function() return x:view(-1, 4) end,
      "farol: view: shape [-1, 4] is invalid for a tensor of shape [2, 3]")
  bad("view with a size of -2", function() return x:view(-2, 3) end,
      "farol: view: size 1 is -2; sizes must be non-negative")
  bad("view of a non-contiguous tensor", function() return x:t():view(6) end,
      "farol: view: cannot view a non-contiguous tensor of shape [3, 2] as [6]", "use reshape")
  bad("view with a string size", function() return x:view("a") end,
      "farol: view: size 1 must be an integer, got string")
  bad("view with a nil between sizes", function() return x:view(2, nil, 3) end,
      "farol: view: size 2 must be an integer, got nil")
  bad("view with an argument after the array of sizes", function() return x:view({2, 3}, 1) end,
      "farol: view: unexpected number after the array of sizes")
  bad("view of an empty tensor with -1", function() return farol.zeros(0):view(0, -1) end,
      "farol: view: cannot infer the -1 in [0, -1] for a tensor of shape [0]")
  bad("view with sizes whose product overflows", function() return x:view(1 << 62, 4) end,
      "farol: view: shape [4611686018427387904, 4] is too large")
  bad("view of an empty tensor with sizes whose product overflows",
      function() return farol.zeros(0):view(1 << 62, 1 << 62, 0) end, "farol: view:", "is too large")
  bad("reshape with a size product that does not match", function() return x:reshape(5) end,
      "farol: reshape: shape [5] is invalid for a tensor of shape [2, 3] (6 elements)")
  bad("reshape with two -1", function() return x:reshape(-1, 2, -1) end,
      "farol: reshape: only one size may be -1, got [-1, 2, -1]")
  bad("permute with a repeated dim", function() return x:permute(1, 1) end,
      "farol: permute: dims (1, 1) are not a permutation", "dim 1 repeats")
  bad("permute with a dim out of range", function() return x:permute(1, 3) end,
      "farol: permute: dim 3 is out of range for a 2-d tensor")
  bad("permute with dim 0", function() return x:permute(0, 1) end,
      "farol: permute: dim 0 is out of range for a 2-d tensor")
  bad("permute with too few dims", function() return x:permute(1) end,
      "farol: permute: 1 dims given for a tensor of shape [2, 3]")
  bad("permute with too many dims in an array", function() return x:permute({1, 2, 3}) end,
      "farol: permute: 3 dims given for a tensor of shape [2, 3]")
  bad("permute with a string dim", function() return x:permute(1, "a") end,
      "farol: permute: dim 2 must be an integer, got string")
  bad("transpose with a dim out of range", function() return x:transpose(1, 3) end,
      "farol: transpose: dim 3 is out of range for a 2-d tensor (dims are 1-based; -1 is the last)")
  bad("transpose with dim 0", function() return x:transpose(0, 1) end,
      "farol: transpose: dim 0 is out of range for a 2-d tensor")
  bad("transpose with one dim", function() return x:transpose(1) end,
      "bad argument #2 to 'transpose'", "number expected, got no value")
  bad("t of a 3-d tensor", function() return x3:t() end,
      "farol: t: expects a tensor of at most 2 dims, got shape [2, 3, 4]")
  bad("squeeze with a dim out of range", function() return x:squeeze(3) end,
      "farol: squeeze: dim 3 is out of range for a 2-d tensor")
  bad("unsqueeze with a dim out of range", function() return x:unsqueeze(4) end,
      "farol: unsqueeze: dim 4 is out of range for a 3-d tensor")
  bad("unsqueeze with dim 0", function() return x:unsqueeze(0) end,
      "farol: unsqueeze: dim 0 is out of range for a 3-d tensor")
  bad("unsqueeze of an 8-d tensor", function() return farol.ones(1, 1, 1, 1, 1, 1, 1, 1):unsqueeze(1) end,
      "farol: unsqueeze: a tensor of 8 dims cannot grow (at most 8 dims)")
  bad("expand to an incompatible size", function() return x:expand(2, 4) end,
      "farol: expand: cannot expand shape [2, 3] to [2, 4]: dim 2 has size 3, which is not 1")
  bad("expand to fewer dims", function() return x:expand(3) end,
      "farol: expand: 1 sizes given for a tensor of shape [2, 3]")
  bad("expand with -1 for a new dim", function() return x:expand(-1, 2, 3) end,
      "farol: expand: cannot expand shape [2, 3] to [-1, 2, 3]", "new leading dim 1")
  bad("expand with a size of -2", function() return x:expand(2, -2) end,
      "farol: expand: size 2 is -2")
  bad("expand with a string size", function() return x:expand("a") end,
      "farol: expand: size 1 must be an integer, got string")
  bad("flatten with a dim out of range", function() return x:flatten(3) end,
      "farol: flatten: dim 3 is out of range for a 2-d tensor")
  bad("flatten with start after end", function() return x3:flatten(3, 1) end,
      "farol: flatten: start dim 3 comes after end dim 1")
  bad("select with an index out of range", function() return x:select(1, 3) end,
      "farol: select: index 3 is out of range for a dim of size 2")
  bad("select with a dim out of range", function() return x:select(3, 1) end,
      "farol: select: dim 3 is out of range for a 2-d tensor")
  bad("select from a 0-d tensor", function() return farol.tensor(1):select(1, 1) end,
      "farol: select: a 0-d tensor has no dim to select from")
  bad("narrow past the end", function() return x:narrow(2, 2, 3) end,
      "farol: narrow: start 2 with length 3 does not fit in dim 2 of size 3")
  bad("narrow with a start out of range", function() return x:narrow(2, 4, 1) end,
      "farol: narrow: index 4 is out of range for a dim of size 3")
  bad("narrow with a negative length", function() return x:narrow(2, 1, -1) end,
      "farol: narrow: start 1 with length -1 does not fit in dim 2 of size 3")
  bad("narrow with the largest length", function() return x:narrow(1, 1, math.maxinteger) end,
      "farol: narrow: start 1 with length 9223372036854775807 does not fit in dim 1 of size 2")
  bad("narrow with a dim out of range", function() return x:narrow(3, 1, 1) end,
      "farol: narrow: dim 3 is out of range for a 2-d tensor")
  bad("index_select with an index out of range", function() return x:index_select(2, {1, 4}) end,
      "farol: index_select: index 4 (at position 2) is out of range for dim 2 of shape [2, 3]")
  bad("index_select with index 0", function() return x:index_select(2, {0}) end,
      "farol: index_select: index 0 is not a valid 1-based index")
  bad("index_select with a negative index", function() return x:index_select(2, {-1}) end,
      "farol: index_select: index -1 is not a valid 1-based index")
  bad("index_select with the smallest integer", function() return x:index_select(2, {math.mininteger}) end,
      "farol: index_select: index -9223372036854775808 is not a valid 1-based index")
  bad("index_select with a float tensor of indices", function() return x:index_select(2, farol.tensor({1})) end,
      "farol: index_select: indices must be an int64 tensor or an array, got float32")
  bad("index_select with a non-integer index", function() return x:index_select(2, {1.5}) end,
      "farol: index_select: 1.5 is not an integer (dtype int64)")
  bad("index_select with a string", function() return x:index_select(2, "a") end,
      "bad argument #2 to 'index_select'", "index tensor or array expected, got string")
  bad("index_select with 2-d indices", function() return x:index_select(2, {{1}}) end,
      "farol: index_select: index must be a 1-D int64 tensor, got int64 [1, 1]")
  bad("index_select with a dim out of range", function() return x:index_select(3, {1}) end,
      "farol: index_select: dim 3 is out of range for a 2-d tensor")
end)

describe("arithmetic", function()
  bad("x + y with shapes that do not broadcast", function() return x + farol.ones(4) end,
      "farol: add: shapes [2, 3] and [4] cannot be broadcast together")
  bad("x + y with transposed shapes", function() return farol.ones(2, 3) + farol.ones(3, 2) end,
      "farol: add: shapes [2, 3] and [3, 2] cannot be broadcast together")
  bad("x - y with shapes that do not broadcast", function() return x - farol.ones(5) end,
      "farol: sub: shapes [2, 3] and [5] cannot be broadcast together")
  bad("x * y with shapes that do not broadcast", function() return x * farol.ones(4, 1, 2) end,
      "farol: mul: shapes [2, 3] and [4, 1, 2] cannot be broadcast together")
  bad("x / y with shapes that do not broadcast", function() return x / farol.ones(5) end,
      "farol: div: shapes [2, 3] and [5] cannot be broadcast together")
  bad("x ^ y with shapes that do not broadcast", function() return x ^ farol.ones(4) end,
      "farol: pow: shapes [2, 3] and [4] cannot be broadcast together")
  bad("x:div(y) with shapes that do not broadcast", function() return x:div(farol.ones(5)) end,
      "farol: div: shapes [2, 3] and [5]")
  bad("x + a string", function() return x + "a" end,
      "farol: add: operand 2 must be a farol.Tensor or a number, got string")
  bad("a string + x", function() return "a" + x end,
      "farol: add: operand 1 must be a farol.Tensor or a number, got string")
  bad("x * a table", function() return x * {} end,
      "farol: mul: operand 2 must be a farol.Tensor or a number, got table")
  bad("x + a boolean", function() return x + true end,
      "farol: add: operand 2 must be a farol.Tensor or a number, got boolean")
  bad("x:add() with no operand", function() return x:add() end,
      "farol: add: operand 2 must be a farol.Tensor or a number, got no value")
  bad("x:sub with a string", function() return x:sub("a") end,
      "farol: sub: operand 2 must be a farol.Tensor or a number, got string")
  bad("int64 ^ number", function() return i64 ^ 2 end,
      "farol: pow: x must be a floating tensor (float32 or float64), got int64")
  bad("int64 ^ int64", function() return i64 ^ i64 end,
      "farol: pow: int64 operands are not supported")
  bad("number ^ int64", function() return 2 ^ i64 end,
      "farol: pow: int64 operands are not supported")
  bad("int64:pow(number)", function() return i64:pow(2) end,
      "farol: pow: x must be a floating tensor", "got int64")
  bad("matmul with inner sizes that differ", function() return farol.matmul(x, x) end,
      "farol: matmul: a [2, 3] and b [2, 3] do not match: a has 3 columns, b has 2 rows")
  bad("matmul of vectors of different lengths", function() return farol.matmul(v4, farol.ones(3)) end,
      "farol: matmul: a [4] and b [3] do not match")
  bad("matmul with batch dims that do not broadcast",
      function() return farol.matmul(farol.ones(2, 2, 3), farol.ones(3, 3, 4)) end,
      "farol: matmul: the batch dims of a [2, 2, 3] and b [3, 3, 4] do not broadcast")
  bad("matmul of a 0-d tensor", function() return farol.matmul(farol.tensor(1), x) end,
      "farol: matmul: both arguments need at least 1 dim, got [] and [2, 3]")
  bad("matmul of int64", function() return farol.matmul(i64, i64) end,
      "farol: matmul: a must be a floating tensor (float32 or float64), got int64")
  bad("matmul with a number", function() return farol.matmul(x, 2) end,
      "bad argument #2 to 'matmul'", "farol.Tensor expected, got number")
  bad("linear with 783 features for a weight of 784",
      function() return farol.linear(farol.ones(2, 783), farol.ones(10, 784)) end,
      "farol: linear: input has 783 features, weight expects 784", "[2, 783]", "[10, 784]")
  bad("linear with a bias of the wrong size",
      function() return farol.linear(farol.ones(2, 4), farol.ones(10, 4), farol.ones(9)) end,
      "farol: linear: bias has shape [9], expected [10]")
  bad("linear with a 1-d weight", function() return farol.linear(farol.ones(2, 4), farol.ones(4)) end,
      "farol: linear: weight must be 2-D (out_features, in_features), got [4]")
  bad("linear of a 0-d input", function() return farol.linear(farol.tensor(1), farol.ones(4, 1)) end,
      "farol: linear: input must have at least 1 dim, got a 0-d tensor")
  bad("linear of int64", function() return farol.linear(farol.ones(2, 4, "int64"), farol.ones(3, 4, "int64")) end,
      "farol: linear: x must be a floating tensor", "got int64")
  bad("linear with dtypes that differ", function() return farol.linear(farol.ones(2, 4), farol.ones(3, 4, "float64")) end,
      "farol: linear: x is float32 but w is float64")
  bad("where with a condition that does not broadcast", function() return farol.where(farol.ones(4), x, x) end,
      "farol: where: shapes [4] and [2, 3] cannot be broadcast together")
  bad("where with values that do not broadcast", function() return farol.where(farol.ones(2, 3), x, farol.ones(4)) end,
      "farol: where: shapes [2, 3] and [4] cannot be broadcast together")
  bad("where with a string value", function() return farol.where(farol.ones(2, 3), x, "a") end,
      "bad argument #3 to 'where'", "farol.Tensor or number expected, got string")
  bad("where with a number condition", function() return farol.where(1, x, x) end,
      "bad argument #1 to 'where'", "farol.Tensor expected, got number")
  bad("masked_fill with a mask that does not broadcast", function() return x:masked_fill(farol.ones(4), 0) end,
      "farol: masked_fill: shapes [2, 3] and [4] cannot be broadcast together")
  bad("masked_fill with a mask larger than x", function() return farol.ones(3):masked_fill(farol.ones(2, 3), 0) end,
      "farol: masked_fill: mask of shape [2, 3] does not broadcast to x of shape [3]")
  bad("masked_fill with a string value", function() return x:masked_fill(farol.ones(2, 3), "a") end,
      "bad argument #2 to 'masked_fill'", "number expected, got string")
  bad("eq with shapes that do not broadcast", function() return x:eq(farol.ones(4)) end,
      "farol: eq: shapes [2, 3] and [4] cannot be broadcast together")
  bad("gt with shapes that do not broadcast", function() return x:gt(farol.ones(5)) end,
      "farol: gt: shapes [2, 3] and [5] cannot be broadcast together")
  bad("lt with a string", function() return x:lt("a") end,
      "farol: lt: argument 2 must be a farol.Tensor or a number, got string")
end)

describe("pointwise functions", function()
  for _, op in ipairs({"abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu",
                       "gelu", "silu", "softplus", "sign", "leaky_relu", "elu"}) do
    bad(op .. " refuses int64", function() return farol[op](i64) end,
        "farol: " .. op .. ": x must be a floating tensor (float32 or float64), got int64")
  end
  bad("exp of a string", function() return farol.exp("a") end,
      "bad argument #1 to 'exp'", "farol.Tensor expected, got string")
  bad("clamp with the lower bound above the upper", function() return x:clamp(2, 1) end,
      "farol: clamp: lower bound 2 is above upper bound 1")
  bad("clamp with a NaN bound", function() return x:clamp(0 / 0, 1) end,
      "farol: clamp: bounds must not be NaN")
  bad("clamp of int64", function() return i64:clamp(0, 1) end,
      "farol: clamp: x must be a floating tensor", "got int64")
  bad("clamp with a string bound", function() return x:clamp("a") end,
      "bad argument #1 to 'clamp'", "number expected, got string")
  bad("leaky_relu with a string slope", function() return x:leaky_relu("a") end,
      "bad argument #1 to 'leaky_relu'", "number expected, got string")
end)

describe("reductions", function()
  for _, op in ipairs({"sum", "mean", "var", "std", "amax", "amin", "logsumexp", "norm", "argmax",
                       "argmin", "max", "min"}) do
    bad(op .. " with dim 3 of a 2-d tensor", function() return x[op](x, 3) end,
        "farol: " .. op .. ": dim 3 is out of range for a 2-d tensor (dims are 1-based; -1 is the last)")
  end
  bad("sum with dim 0", function() return x:sum(0) end,
      "farol: sum: dim 0 is out of range for a 2-d tensor")
  bad("sum with dim -3", function() return x:sum(-3) end,
      "farol: sum: dim -3 is out of range for a 2-d tensor")
  bad("sum with dim 2 of a 0-d tensor", function() return farol.tensor(1):sum(2) end,
      "farol: sum: dim 2 is out of range for a 0-d tensor")
  bad("sum with a string dim", function() return x:sum("a") end,
      "bad argument #1 to 'sum'", "number expected, got string")
  bad("sum with a non-integer dim", function() return x:sum(1.5) end,
      "bad argument #1 to 'sum'", "number has no integer representation")
  for _, op in ipairs({"mean", "var", "std", "logsumexp", "norm"}) do
    bad(op .. " refuses int64", function() return i64[op](i64) end,
        "farol: " .. op .. ": x must be a floating tensor (float32 or float64), got int64")
  end
  bad("amax of an empty tensor", function() return farol.zeros(0):amax() end,
      "farol: amax: cannot reduce an empty tensor [0]")
  bad("max over an empty dim", function() return farol.zeros(0, 2):max(1) end,
      "farol: max: cannot reduce over dim 1 of size 0 (input [0, 2])")
  bad("argmax of an empty tensor", function() return farol.zeros(0):argmax() end,
      "farol: argmax: cannot reduce an empty tensor [0]")
  bad("softmax with dim 3 of a 2-d tensor", function() return farol.softmax(x, 3) end,
      "farol: softmax: dim 3 is out of range for a 2-d tensor")
  bad("softmax without a dim", function() return farol.softmax(x) end,
      "bad argument #2 to 'softmax'", "number expected, got no value")
  bad("softmax of int64", function() return farol.softmax(i64, 1) end,
      "farol: softmax: x must be a floating tensor", "got int64")
  bad("log_softmax with dim -3 of a 2-d tensor", function() return farol.log_softmax(x, -3) end,
      "farol: log_softmax: dim -3 is out of range for a 2-d tensor")
end)

describe("convolution and pooling", function()
  bad("conv2d with a channel mismatch", function() return F.conv2d(img, farol.ones(4, 2, 3, 3)) end,
      "farol: conv2d: input has 3 channels, weight expects 2 (groups 1)")
  bad("conv2d of a 2-d input", function() return F.conv2d(farol.ones(3, 8), w3) end,
      "farol: conv2d: x must be 4-D (N, C, H, W), got shape [3, 8]")
  bad("conv2d with a 3-d weight", function() return F.conv2d(img, farol.ones(4, 3, 3)) end,
      "farol: conv2d: w must be 4-D (K, C/groups, kH, kW), got shape [4, 3, 3]")
  bad("conv2d with stride 0", function() return F.conv2d(img, w3, nil, {stride = 0}) end,
      "farol: conv2d: stride and dilation must be >= 1 and padding >= 0, got stride 0")
  bad("conv2d with a negative stride", function() return F.conv2d(img, w3, nil, {stride = -1}) end,
      "farol: conv2d:", "got stride -1")
  bad("conv2d with a negative padding", function() return F.conv2d(img, w3, nil, {padding = -1}) end,
      "farol: conv2d:", "padding -1")
  bad("conv2d with a string padding", function() return F.conv2d(img, w3, nil, {padding = "same"}) end,
      "farol: conv2d: padding must be an integer or a pair of integers, got string")
  bad("conv2d with dilation 0", function() return F.conv2d(img, w3, nil, {dilation = 0}) end,
      "farol: conv2d:", "dilation 0")
  bad("conv2d with groups that do not divide the channels", function() return F.conv2d(img, w3, nil, {groups = 2}) end,
      "farol: conv2d: groups 2 must divide both the 3 input channels and the 4 output channels")
  bad("conv2d with groups 0", function() return F.conv2d(img, w3, nil, {groups = 0}) end,
      "farol: conv2d: groups must be >= 1, got 0")
  bad("conv2d with a bias of the wrong size", function() return F.conv2d(img, w3, farol.ones(3)) end,
      "farol: conv2d: b must have shape [4] (one per output channel), got [3]")
  bad("conv2d with a kernel larger than the input", function() return F.conv2d(img, farol.ones(4, 3, 9, 9)) end,
      "farol: conv2d: output size is not positive", "kernel 9 x 9")
  bad("conv2d with options that are not a table", function() return F.conv2d(img, w3, nil, 5) end,
      "farol: conv2d: options must be a table, got number")
  bad("conv2d with a stride of three values", function() return F.conv2d(img, w3, nil, {stride = {1, 2, 3}}) end,
      "farol: conv2d: stride must be an integer or a pair of integers, got table")
  bad("conv2d with a stride that does not fit an int", function() return F.conv2d(img, w3, nil, {stride = 1 << 40}) end,
      "farol: conv2d: stride 1099511627776 is out of range")
  bad("conv2d of int64", function() return F.conv2d(farol.ones(1, 3, 8, 8, "int64"), farol.ones(4, 3, 3, 3, "int64")) end,
      "farol: conv2d: x must be a floating tensor", "got int64")
  bad("conv2d with dtypes that differ", function() return F.conv2d(img, farol.ones(4, 3, 3, 3, "float64")) end,
      "farol: conv2d: x, w and b must share a dtype, got x float32, w float64")
  bad("conv1d with a channel mismatch", function() return F.conv1d(farol.ones(1, 3, 8), farol.ones(4, 2, 3)) end,
      "farol: conv1d: input has 3 channels, weight expects 2 (groups 1)")
  bad("conv1d of a 4-d input", function() return F.conv1d(img, farol.ones(4, 3, 3)) end,
      "farol: conv1d: x must be 3-D (N, C, L), got shape [1, 3, 8, 8]")
  bad("max_pool2d with kernel 0", function() return F.max_pool2d(img, 0) end,
      "farol: max_pool2d: kernel and stride must be >= 1", "kernel 0 x 0")
  bad("max_pool2d with a kernel larger than the input", function() return F.max_pool2d(img, 9) end,
      "farol: max_pool2d: output size is not positive", "kernel 9 x 9")
  bad("max_pool2d of a 1-d input", function() return F.max_pool2d(farol.ones(8), 2) end,
      "farol: max_pool2d: x must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape [8]")
  bad("max_pool2d with a negative stride", function() return F.max_pool2d(img, 2, {stride = -1}) end,
      "farol: max_pool2d: kernel and stride must be >= 1", "stride -1 x -1")
  bad("max_pool2d with padding over half the kernel", function() return F.max_pool2d(img, 2, {padding = 2}) end,
      "farol: max_pool2d: padding must be >= 0 and at most half the kernel, got padding 2 x 2 for kernel 2 x 2")
  bad("max_pool2d with a string kernel", function() return F.max_pool2d(img, "a") end,
      "farol: max_pool2d: kernel size must be an integer or a pair of integers, got string")
  bad("max_pool2d without a kernel", function() return F.max_pool2d(img) end,
      "farol: max_pool2d: kernel size must be an integer or a pair of integers, got no value")
  bad("max_pool2d of int64", function() return F.max_pool2d(farol.ones(1, 1, 4, 4, "int64"), 2) end,
      "farol: max_pool2d: x must be a floating tensor", "got int64")
  bad("avg_pool2d with a zero kernel height", function() return F.avg_pool2d(img, {0, 2}) end,
      "farol: avg_pool2d: kernel and stride must be >= 1", "kernel 0 x 2")
  bad("avg_pool2d with padding over half the kernel", function() return F.avg_pool2d(img, 2, {padding = 3}) end,
      "farol: avg_pool2d: padding must be >= 0 and at most half the kernel, got padding 3 x 3")
  bad("adaptive_avg_pool2d to a negative size", function() return F.adaptive_avg_pool2d(img, {-1, 2}) end,
      "farol: adaptive_avg_pool2d: size 1 is -1")
  bad("adaptive_avg_pool2d to three sizes", function() return F.adaptive_avg_pool2d(img, {1, 2, 3}) end,
      "farol: adaptive_avg_pool2d: output size must be a number or {h, w}")
  bad("adaptive_avg_pool2d to a string size", function() return F.adaptive_avg_pool2d(img, "a") end,
      "farol: adaptive_avg_pool2d: output size must be a number or {h, w}")
  bad("adaptive_avg_pool2d of a 1-d input", function() return F.adaptive_avg_pool2d(farol.ones(8), 2) end,
      "farol: adaptive_avg_pool2d: x must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape [8]")
  bad("adaptive_avg_pool2d to a size too large", function() return F.adaptive_avg_pool2d(img, {1 << 40, 1}) end,
      "farol: adaptive_avg_pool2d: output size 1099511627776 x 1 is too large")
end)

describe("normalisation", function()
  bad("batch_norm with a mean of the wrong size", function() return F.batch_norm(img, farol.zeros(4), farol.ones(3)) end,
      "farol: batch_norm: mean must have shape [3] (the channels of x [1, 3, 8, 8]), got [4]")
  bad("batch_norm with a var of the wrong size", function() return F.batch_norm(img, farol.zeros(3), farol.ones(4)) end,
      "farol: batch_norm: var must have shape [3]", "got [4]")
  bad("batch_norm with a weight of the wrong size",
      function() return F.batch_norm(img, farol.zeros(3), farol.ones(3), farol.ones(2)) end,
      "farol: batch_norm: w must have shape [3]", "got [2]")
  bad("batch_norm of a 1-d input", function() return F.batch_norm(farol.ones(3), farol.zeros(3), farol.ones(3)) end,
      "farol: batch_norm: x must have at least 2 dims (N, C, ...), got [3]")
  bad("batch_norm with a negative eps",
      function() return F.batch_norm(img, farol.zeros(3), farol.ones(3), nil, nil, -1) end,
      "farol: batch_norm: eps must be >= 0, got -1")
  bad("layer_norm with a shape that is not the trailing dims", function() return F.layer_norm(x, {4}) end,
      "farol: layer_norm: normalized shape [4] does not match the trailing dims of x [2, 3]")
  bad("layer_norm with two dims that do not match", function() return F.layer_norm(x, {2, 4}) end,
      "farol: layer_norm: normalized shape [2, 4] does not match the trailing dims of x [2, 3]")
  bad("layer_norm over more dims than x has", function() return F.layer_norm(x, {1, 2, 3}) end,
      "farol: layer_norm: the normalized shape must have 1 to 2 dims (those of x [2, 3]), got 3")
  bad("layer_norm over no dims", function() return F.layer_norm(x, {}) end,
      "farol: layer_norm: the normalized shape must have 1 to 2 dims", "got 0")
  bad("layer_norm with a negative size", function() return F.layer_norm(x, {-3}) end,
      "farol: layer_norm: size 1 is -3")
  bad("layer_norm with a weight of the wrong shape", function() return F.layer_norm(x, {3}, farol.ones(4)) end,
      "farol: layer_norm: w must have the normalized shape [3], got [4]")
  bad("layer_norm with a bias of the wrong shape", function() return F.layer_norm(x, {3}, farol.ones(3), farol.ones(2)) end,
      "farol: layer_norm: b must have the normalized shape [3], got [2]")
  bad("layer_norm with a string shape", function() return F.layer_norm(x, "a") end,
      "bad argument #2 to 'layer_norm'", "table expected, got string")
  bad("layer_norm with a negative eps", function() return F.layer_norm(x, 3, nil, nil, -1) end,
      "farol: layer_norm: eps must be >= 0, got -1")
end)

describe("embedding, losses, pad, dropout", function()
  local W = farol.ones(10, 4)
  bad("embedding with an index past the table", function() return F.embedding({1, 11}, W) end,
      "farol: embedding: index 11 (element 2 of the indices) is out of range for w [10, 4] (valid 1..10)")
  bad("embedding with an int64 tensor index past the table",
      function() return F.embedding(farol.tensor({3, 12}, "int64"), W) end,
      "farol: embedding: index 12 (element 2 of the indices) is out of range for w [10, 4]")
  bad("embedding with the largest index", function() return F.embedding({math.maxinteger}, W) end,
      "farol: embedding: index 9223372036854775807 (element 1 of the indices) is out of range")
  bad("embedding with index 0", function() return F.embedding({0}, W) end,
      "farol: embedding: index 0 is not a valid 1-based index")
  bad("embedding with float indices", function() return F.embedding(farol.ones(2), W) end,
      "farol: embedding: indices must be an int64 tensor or an array, got float32")
  bad("embedding with a 1-d weight", function() return F.embedding({1}, farol.ones(10)) end,
      "farol: embedding: w must be 2-D (rows, dim), got [10]")
  bad("embedding with an int64 weight", function() return F.embedding({1}, farol.ones(10, 4, "int64")) end,
      "farol: embedding: w must be a floating tensor", "got int64")

  local logits = farol.zeros(3, 5)
  bad("cross_entropy with a label past the classes", function() return F.cross_entropy(logits, {1, 2, 6}) end,
      "farol: cross_entropy: label 6 (element 3 of labels) is out of range for 5 classes (valid 1..5)")
  bad("cross_entropy with label 0", function() return F.cross_entropy(logits, {1, 0, 2}) end,
      "farol: cross_entropy: index 0 is not a valid 1-based index")
  bad("cross_entropy with a negative label", function() return F.cross_entropy(logits, {1, -1, 2}) end,
      "farol: cross_entropy: index -1 is not a valid 1-based index")
  bad("cross_entropy with too few labels", function() return F.cross_entropy(logits, {1, 2}) end,
      "farol: cross_entropy: labels must have shape [3] to match logits [3, 5], got [2]")
  bad("cross_entropy with 2-d labels", function() return F.cross_entropy(logits, {{1}, {2}, {3}}) end,
      "farol: cross_entropy: labels must have shape [3] to match logits [3, 5], got [3, 1]")
  bad("cross_entropy with 1-d logits", function() return F.cross_entropy(farol.zeros(5), {1}) end,
      "farol: cross_entropy: logits must be 2-D (N, C), got [5]")
  bad("cross_entropy with float labels", function() return F.cross_entropy(logits, farol.ones(3)) end,
      "farol: cross_entropy: indices must be an int64 tensor or an array, got float32")
  bad("cross_entropy with int64 logits", function() return F.cross_entropy(farol.zeros(3, 5, "int64"), {1, 2, 3}) end,
      "farol: cross_entropy: logits must be a floating tensor", "got int64")
  bad("mse_loss with shapes that differ", function() return F.mse_loss(x, farol.ones(3, 2)) end,
      "farol: mse_loss: a [2, 3] and b [3, 2] must have the same shape")
  bad("mse_loss of int64", function() return F.mse_loss(i64, i64) end,
      "farol: mse_loss: a must be a floating tensor", "got int64")

  bad("pad with an odd number of pads", function() return F.pad(x, {1}) end,
      "farol: pad: pads must hold (before, after) pairs", "x [2, 3] (4 values), got 1 values")
  bad("pad with more pads than dims", function() return F.pad(x, {1, 1, 1, 1, 1, 1}) end,
      "farol: pad: pads must hold (before, after) pairs", "got 6 values")
  bad("pad with negative pads", function() return F.pad(x, {-2, -2}) end,
      "farol: pad: negative padding (-2, -2) for dim 2 is not supported")
  bad("pad with a string pad", function() return F.pad(x, {1, "a"}) end,
      "farol: pad: pad 2 must be an integer")
  bad("pad with a number for the pads", function() return F.pad(x, 1) end,
      "bad argument #2 to 'pad'", "table expected, got number")
  bad("pad to a size too large", function() return F.pad(x, {1 << 40, 1 << 40}) end,
      "farol: pad:", "too large")
  bad("pad with a string value", function() return F.pad(x, {1, 1}, "a") end,
      "bad argument #3 to 'pad'", "number expected, got string")
  bad("dropout with p above 1", function() return F.dropout(x, 1.5) end,
      "farol: dropout: p must be in [0, 1), got 1.5")
  bad("dropout with a negative p", function() return F.dropout(x, -0.5) end,
      "farol: dropout: p must be in [0, 1), got -0.5")
  bad("dropout with a NaN p", function() return F.dropout(x, 0 / 0) end,
      "farol: dropout: p must be in [0, 1)", "nan")
  bad("dropout of int64", function() return F.dropout(i64, 0.5) end,
      "farol: dropout: x must be a floating tensor", "got int64")
end)

describe("cat and stack", function()
  bad("cat of an empty list", function() return farol.cat({}, 1) end,
      "farol: cat: expects a non-empty array of tensors")
  bad("cat of shapes that differ outside the dim", function() return farol.cat({x, farol.ones(2, 4)}, 1) end,
      "farol: cat: tensor 2 has shape [2, 4] but tensor 1 has shape [2, 3]; shapes must match except in dim 1")
  bad("cat of tensors with different ndim", function() return farol.cat({x, farol.ones(3)}) end,
      "farol: cat: tensor 2 has shape [3] but tensor 1 has shape [2, 3]")
  bad("cat of dtypes that differ", function() return farol.cat({x, farol.ones(2, 3, "float64")}, 1) end,
      "farol: cat: tensor 2 is float64 but tensor 1 is float32")
  bad("cat with a dim out of range", function() return farol.cat({x, x}, 3) end,
      "farol: cat: dim 3 is out of range for a 2-d tensor")
  bad("cat of a list with a number", function() return farol.cat({x, 3}, 1) end,
      "farol: cat: element 2 is a number, expected farol.Tensor")
  bad("cat of a list with a hole", function() return farol.cat({x, nil, x}, 1) end,
      "farol: cat: element 2 is a nil, expected farol.Tensor")
  bad("cat of a tensor instead of a list", function() return farol.cat(x, 1) end,
      "bad argument #1 to 'cat'", "table expected, got farol.Tensor")
  bad("cat of 0-d tensors", function() return farol.cat({farol.tensor(1), farol.tensor(2)}) end,
      "farol: cat: tensor 1 is 0-d; 0-d tensors cannot be concatenated (use stack)")
  bad("stack of an empty list", function() return farol.stack({}) end,
      "farol: stack: expects a non-empty array of tensors")
  bad("stack of shapes that differ", function() return farol.stack({x, farol.ones(3, 2)}) end,
      "farol: stack: tensor 2 has shape [3, 2] but tensor 1 has shape [2, 3]; all must have the same shape")
  bad("stack with a dim out of range", function() return farol.stack({x, x}, 4) end,
      "farol: stack: dim 4 is out of range for a 3-d tensor")
  bad("stack of a list with a string", function() return farol.stack({x, "a"}) end,
      "farol: stack: element 2 is a string, expected farol.Tensor")
  bad("stack of 8-d tensors", function() return farol.stack({farol.ones(1, 1, 1, 1, 1, 1, 1, 1)}) end,
      "farol: stack: tensors of 8 dims cannot be stacked (at most 8 dims)")
end)

describe("autograd", function()
  local function leaf(...) return farol.ones(...):requires_grad(true) end
  bad("backward of a non-scalar without a gradient", function() (leaf(3) * 2):backward() end,
      "farol: backward: output 1 has shape [3]: a gradient for it is needed unless it has one element")
  bad("backward with a gradient of the wrong shape", function() (leaf(3) * 2):backward(farol.ones(2)) end,
      "farol: backward: gradient 1 has shape [2] (float32), output has [3]")
  bad("backward with an int64 gradient", function() (leaf(3) * 2):backward(farol.ones(3, "int64")) end,
      "farol: backward: gradient 1 has shape [3] (int64)")
  bad("backward with a string gradient", function() (leaf(3) * 2):backward("a") end,
      "bad argument #1 to 'backward'", "farol.Tensor expected, got string")
  bad("backward of a tensor that requires no gradient", function() farol.ones(1):backward() end,
      "farol: backward: output 1 does not require a gradient")
  bad("backward after a saved tensor was modified in place", function()
    local b = farol.ones(3)
    local c = leaf(3) * b
    b:fill_(2)
    c:sum():backward()
  end, "farol: backward: a tensor saved by mul was modified in place")
  bad("grad with respect to a tensor that does not require one", function()
    local b = farol.ones(3)
    return farol.grad((leaf(3) * b):sum(), b)
  end, "farol: grad: input 1 does not require a gradient")
  bad("grad of a non-scalar without grad_outputs", function()
    local a = leaf(3)
    return farol.grad(a * 2, a)
  end, "farol: grad: output 1 has shape [3]: a gradient for it is needed")
  bad("grad with grad_outputs of the wrong shape", function()
    local a = leaf(3)
    return farol.grad({a * 2}, {a}, {farol.ones(2)})
  end, "farol: grad: gradient 1 has shape [2] (float32), output has [3]")
  bad("grad with more grad_outputs than outputs", function()
    local a = leaf(3)
    return farol.grad({a:sum()}, {a}, {farol.ones(1), farol.ones(1)})
  end, "farol: grad: 2 grad_outputs for 1 outputs")
  bad("grad of a string", function() return farol.grad("a", x) end,
      "farol: grad: outputs must be a farol.Tensor or an array of them, got string")
  bad("grad with respect to a string", function() return farol.grad(leaf(3):sum(), "a") end,
      "farol: grad: inputs must be a farol.Tensor or an array of them, got string")
  bad("grad of empty lists", function() return farol.grad({}, {}) end,
      "farol: grad: outputs and inputs must not be empty")
  bad("grad with a number among the inputs", function()
    local a = leaf(3)
    return farol.grad({a:sum()}, {a, 3})
  end, "farol: grad: inputs[2] is a number, expected farol.Tensor")
  bad("requires_grad on int64", function() return i64:requires_grad(true) end,
      "farol: requires_grad: only floating tensors can require a gradient, got int64")
  bad("requires_grad with a string", function() return x:requires_grad("yes") end,
      "bad argument #1 to 'requires_grad'", "boolean expected, got string")
  bad("requires_grad(false) on a computed tensor", function() return (leaf(3) * 2):requires_grad(false) end,
      "farol: requires_grad: cannot turn off the gradient of a tensor computed by an op")
  bad("no_grad with a number", function() return farol.no_grad(5) end,
      "farol: no_grad: fn must be a function or a callable table, got number")
  bad("no_grad with nothing", function() return farol.no_grad() end,
      "farol: no_grad: fn must be a function or a callable table, got no value")

  it("no_grad passes the function's error on and turns recording back on", function()
    local err = H.fails(function() farol.no_grad(function() error("farol: mine: inner failure", 0) end) end,
                        "farol: mine: inner failure")()
    assert(err:find("^farol: mine:"))
    assert(farol.is_grad_enabled())
  end)
end)

describe("Saliency", function()
  local lin = nn.Linear(4, 3)
  local inp = farol.rand(2, 4)
  local sal = farol.Saliency(lin)
  bad("a target is needed for 3 outputs per example", function() return sal:attribute(inp) end,
      "farol: Saliency: a target is needed: the forward output has shape [2, 3] (3 elements per example)")
  bad("a target past the outputs", function() return sal:attribute(inp, 4) end,
      "farol: Saliency: target index 4 is out of range for output dim 2 of size 3 (output shape [2, 3]")
  bad("a negative target past the outputs", function() return sal:attribute(inp, -4) end,
      "farol: Saliency: target index -4 is out of range for output dim 2 of size 3")
  bad("target 0 (targets are 1-based)", function() return sal:attribute(inp, 0) end,
      "farol: Saliency: target is 0; targets are 1-based (-1 is the last)")
  bad("a non-integer target", function() return sal:attribute(inp, 1.5) end,
      "farol: Saliency: target must be an integer, got a non-integer number")
  bad("a target of 2^63", function() return sal:attribute(inp, 2 ^ 63) end,
      "farol: Saliency: target must be an integer, got a non-integer number")
  bad("a string target", function() return sal:attribute(inp, "a") end,
      "farol: Saliency: target must be nil, an integer, a tensor, farol.tuple(...) or an array, got string")
  bad("a per-example target longer than the batch", function() return sal:attribute(inp, {1, 2, 3}) end,
      "farol: Saliency: the per-example target has 3 entries but the batch has 2 examples")
  bad("a per-example target past the outputs", function() return sal:attribute(inp, {1, 4}) end,
      "farol: Saliency: target index 4 is out of range for output dim 2 of size 3")
  bad("a per-example target of 0", function() return sal:attribute(inp, {1, 0}) end,
      "farol: Saliency: target[2] is 0; targets are 1-based")
  bad("a per-example target that is not an integer", function() return sal:attribute(inp, {1, 2.5}) end,
      "farol: Saliency: target[2] must be an integer, got a non-integer number")
  bad("a tuple longer than the output dims", function() return sal:attribute(inp, farol.tuple(1, 2)) end,
      "farol: Saliency: target has 2 indices per example but output [2, 3] has 1 dims after the batch")
  bad("an empty tuple", function() return sal:attribute(inp, farol.tuple()) end,
      "farol: Saliency: the target tuple has 0 indices; give 1 to 7")
  bad("a tuple of 8 indices", function() return sal:attribute(inp, farol.tuple(1, 1, 1, 1, 1, 1, 1, 1)) end,
      "farol: Saliency: the target tuple has 8 indices; give 1 to 7")
  bad("an array mixing an integer and an index tuple", function() return sal:attribute(inp, {1, {2}}) end,
      "farol: Saliency: target[2] is a table but target[1] is an integer")
  bad("an array mixing an index tuple and an integer", function() return sal:attribute(inp, {{1}, 2}) end,
      "farol: Saliency: target[2] is a number but target[1] is an index tuple")
  bad("index tuples of different lengths", function() return sal:attribute(inp, {{1}, {1, 2}}) end,
      "farol: Saliency: target[2] has 2 indices but target[1] has 1")
  bad("an empty target array (options form)", function() return sal:attribute(inp, {target = {}}) end,
      "farol: Saliency: the target array is empty")
  bad("a 2-d target tensor", function() return sal:attribute(inp, farol.ones(2, 2, "int64")) end,
      "farol: Saliency: a target tensor must have one element or be 1-D, got 2 dims")
  bad("a target tensor longer than the batch", function() return sal:attribute(inp, farol.tensor({1, 2, 3}, "int64")) end,
      "farol: Saliency: the per-example target has 3 entries but the batch has 2 examples")
  bad("a target tensor with a non-integer", function() return sal:attribute(inp, farol.tensor({1.5, 2})) end,
      "farol: Saliency: target tensor element must be an integer, got a non-integer number")
  bad("a target tensor with 0", function() return sal:attribute(inp, farol.tensor({0, 2}, "int64")) end,
      "farol: Saliency: target tensor element is 0; targets are 1-based")
  bad("a per-example target on a 3-d output", function()
    return farol.Saliency(function(a) return a:view(2, 2, 2) end):attribute(inp, {1, 2})
  end, "farol: Saliency: after selecting the target each example still has 2 elements (output shape [2, 2, 2])")
  bad("a per-example target when the output is not batched", function()
    return farol.Saliency(function(a) return a:view(4, 2) end):attribute(inp, {1, 1})
  end, "farol: Saliency: the forward output has shape [4, 2]: its dim 1 must be the batch (2 examples)")
  bad("an int64 input", function() return sal:attribute(farol.ones(2, 4, "int64"), 1) end,
      "farol: Saliency: input 1 is int64; attributions need floating inputs")
  bad("a 0-d input", function() return sal:attribute(farol.tensor(1), 1) end,
      "farol: Saliency: input 1 is 0-d; dim 1 must be the batch")
  bad("inputs whose batch sizes disagree", function()
    return farol.Saliency(function(a, b) return lin(a) + lin(b) end):attribute({farol.rand(2, 4), farol.rand(3, 4)}, 1)
  end, "farol: Saliency: input 2 has batch size 3 but input 1 has 2 (dim 1 is the batch and must agree)")
  bad("inputs given as a string", function() return sal:attribute("a", 1) end,
      "farol: Saliency: inputs must be a farol.Tensor or an array of them, got string")
  bad("an empty inputs array", function() return sal:attribute({}, 1) end,
      "farol: Saliency: the inputs array is empty")
  bad("a number among the inputs", function() return sal:attribute({inp, 3}, 1) end,
      "farol: Saliency: input 2 is a number, expected farol.Tensor")
  bad("a forward that returns a number", function() return farol.Saliency(function() return 5 end):attribute(inp) end,
      "farol: Saliency: the forward function returned number, expected a farol.Tensor")
  bad("a forward that returns nothing", function() return farol.Saliency(function() end):attribute(inp) end,
      "farol: Saliency: the forward function returned nil, expected a farol.Tensor")
  bad("a forward that returns a freed tensor", function()
    return farol.Saliency(function(a) local t = lin(a); t:free(); return t end):attribute(inp, 1)
  end, "farol: Saliency: the forward function returned a freed tensor")
  bad("a forward that returns an int64 tensor", function()
    return farol.Saliency(function() return farol.ones(2, "int64") end):attribute(inp)
  end, "farol: Saliency: the forward output is int64; it must be floating")
  bad("a forward that returns a 0-d tensor", function()
    return farol.Saliency(function(a) return a:sum() end):attribute(inp)
  end, "farol: Saliency: the forward output is 0-d; it needs a batch dim of 2 examples")
  bad("a forward whose output does not depend on the input", function()
    return farol.Saliency(function() return farol.ones(2, 3) end):attribute(inp, 1)
  end, "farol: Saliency: the forward output does not depend on the inputs")
  bad("an error inside forward propagates as it was raised", function()
    return farol.Saliency(function() error("farol: my_model: inner failure", 0) end):attribute(inp)
  end, "farol: my_model: inner failure")
  bad("a farol error inside forward propagates", function()
    return farol.Saliency(function(a) return a:view(7) end):attribute(inp)
  end, "farol: view: shape [7] is invalid for a tensor of shape [2, 4] (8 elements)")
  bad("a forward_func that is a number", function() return farol.Saliency(5) end,
      "farol: Saliency: forward_func must be a function or a callable table, got number")
  bad("a forward_func that is a table without __call", function() return farol.Saliency({}) end,
      "farol: Saliency: forward_func must be a function or a callable table, got table")
  bad("abs that is not a boolean", function() return sal:attribute(inp, 1, "yes") end,
      "farol: Saliency: abs must be a boolean, got string")
  bad("abs that is not a boolean (options form)", function() return sal:attribute(inp, {target = 1, abs = 1}) end,
      "farol: Saliency: abs must be a boolean, got number")
  bad("more than 4 arguments", function() return sal:attribute(inp, 1, true, nil, 5) end,
      "farol: Saliency:attribute: at most 4 arguments")
  bad("attribute called with a dot", function() return sal.attribute(inp, 1) end,
      "farol: Saliency:attribute: call it as sal:attribute(inputs, ...)")

  it("leaves the input as it was when forward fails", function()
    local a = farol.rand(2, 4)
    local before = a:clone()
    H.fails(function() farol.Saliency(function() error("boom") end):attribute(a, 1) end, "boom")()
    H.close(a, before, 0, 0, "input")
    assert.is_false(a:requires_grad())
    assert.is_nil(a.grad)
  end)

  it("leaves a leaf's requires_grad and .grad as they were when the target is bad", function()
    local a = farol.rand(2, 4):requires_grad(true)
    lin(a):sum():backward()
    local grad = a.grad:clone()
    H.fails(function() sal:attribute(a, 5) end, "target index 5 is out of range")()
    assert.is_true(a:requires_grad())
    H.close(a.grad, grad, 0, 0, "a.grad")
  end)
end)

describe("modules", function()
  bad("Linear with a negative size", function() return nn.Linear(-1, 3) end,
      "farol: nn.Linear: in_features must be an integer >= 0, got -1")
  bad("Linear with a non-integer size", function() return nn.Linear(2.5, 3) end,
      "farol: nn.Linear: in_features must be an integer >= 0, got 2.5")
  bad("Linear with a string size", function() return nn.Linear("a", 3) end,
      "farol: nn.Linear: in_features must be an integer >= 0, got a")
  bad("Linear without out_features", function() return nn.Linear(3) end,
      "farol: nn.Linear: out_features must be an integer >= 0, got nil")
  bad("Linear called on the wrong number of features", function() return nn.Linear(4, 3)(farol.ones(2, 5)) end,
      "farol: linear: input has 5 features, weight expects 4")
  bad("Conv2d with kernel size 0", function() return nn.Conv2d(3, 4, 0) end,
      "farol: nn.Conv2d: kernel_size must be an integer >= 1, got 0")
  bad("Conv2d with groups that do not divide the channels", function() return nn.Conv2d(3, 4, 3, {groups = 2}) end,
      "farol: nn.Conv2d: groups (2) must divide in_channels (3) and out_channels (4)")
  bad("Conv2d with an unknown option", function() return nn.Conv2d(3, 4, 3, {strid = 2}) end,
      "farol: nn.Conv2d: unknown option 'strid' (valid: stride, padding, dilation, groups, bias)")
  bad("Conv2d called on the wrong number of channels", function() return nn.Conv2d(3, 4, 3)(farol.ones(1, 2, 8, 8)) end,
      "farol: conv2d: input has 2 channels, weight expects 3")
  bad("Dropout with p above 1", function() return nn.Dropout(2) end,
      "farol: nn.Dropout: p must be a number in [0, 1], got 2")
  bad("Softmax with a string dim", function() return nn.Softmax("a") end,
      "farol: nn.Softmax: dim must be an integer, got a")
  bad("Sequential with a number", function() return nn.Sequential(nn.ReLU(), 5) end,
      "farol: nn.Sequential: argument 2 is a number, expected a module")
  bad("BatchNorm2d with 0 features", function() return nn.BatchNorm2d(0) end,
      "farol: nn.BatchNorm2d: num_features must be an integer >= 1, got 0")
  bad("Embedding with 0 rows", function() return nn.Embedding(0, 3) end,
      "farol: nn.Embedding: num_embeddings must be an integer >= 1, got 0")
  bad("Module from a number", function() return nn.Module(5) end,
      "farol: nn.Module: expects a table of fields, got number")
  bad("a module without forward", function() return nn.Module{}(x) end,
      "has no forward method")
  bad("an int64 parameter", function() nn.Module{}:parameter("w", farol.ones(2, "int64")) end,
      "farol: parameter: w must be floating, got int64")
  bad("a parameter that is not a tensor", function() nn.Module{}:parameter("w", 5) end,
      "farol: parameter: w must be a tensor, got number")
  bad("a parameter name that is not a string", function() nn.Module{}:parameter(5, x) end,
      "farol: parameter: name must be a string, got number")

  local m = nn.Linear(3, 2)
  bad("load_state_dict with a missing key", function() m:load_state_dict({weight = farol.ones(2, 3)}) end,
      "farol: load_state_dict: missing keys: bias")
  bad("load_state_dict with an unexpected key",
      function() m:load_state_dict({weight = farol.ones(2, 3), bias = farol.ones(2), foo = x}) end,
      "farol: load_state_dict: unexpected keys: foo")
  bad("load_state_dict with a size mismatch",
      function() m:load_state_dict({weight = farol.ones(3, 3), bias = farol.ones(2)}) end,
      "farol: load_state_dict: size mismatch for weight: checkpoint has [3, 3], model has [2, 3]")
  bad("load_state_dict with a number for a tensor",
      function() m:load_state_dict({weight = 5, bias = farol.ones(2)}) end,
      "farol: load_state_dict: weight is a number, expected a tensor")
  bad("load_state_dict of a number", function() m:load_state_dict(5) end,
      "farol: load_state_dict: expects a table of name -> tensor, got number")
  bad("load_state_dict with options that are not a table", function() m:load_state_dict({}, 5) end,
      "farol: load_state_dict: options must be a table, got number")
  bad("Module:to int64", function() m:to("int64") end,
      "farol: Module:to: dtype must be \"float32\" or \"float64\", got int64")
  bad("Module:to an unknown dtype", function() m:to("float16") end,
      "farol: Module:to: dtype must be \"float32\" or \"float64\", got float16")

  -- the first child's tensors are checked before the second child fails
  local function snapshot(model)
    local out = {}
    for name, t in pairs(model:state_dict()) do out[name] = t:clone() end
    return out
  end
  local function same_state(model, before)
    for name, t in pairs(model:state_dict()) do H.close(t, before[name], 0, 0, name) end
  end
  it("load_state_dict leaves every tensor as it was on a size mismatch midway", function()
    local s = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    local before = snapshot(s)
    H.fails(function()
      s:load_state_dict({["0.weight"] = farol.full({2, 3}, 7), ["0.bias"] = farol.full({2}, 7),
                         ["1.weight"] = farol.zeros(3, 3), ["1.bias"] = farol.zeros(2)})
    end, "farol: load_state_dict: size mismatch for 1.weight: checkpoint has [3, 3], model has [2, 2]")()
    same_state(s, before)
  end)
  it("load_state_dict leaves every tensor as it was when a key is missing", function()
    local s = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    local before = snapshot(s)
    H.fails(function() s:load_state_dict({["0.weight"] = farol.full({2, 3}, 7)}) end,
            "farol: load_state_dict: missing keys: 0.bias, 1.bias, 1.weight")()
    same_state(s, before)
  end)
  it("load_state_dict leaves every tensor as it was when a value is not a tensor", function()
    local s = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    local before = snapshot(s)
    H.fails(function()
      s:load_state_dict({["0.weight"] = farol.full({2, 3}, 7), ["0.bias"] = farol.full({2}, 7),
                         ["1.weight"] = "oops", ["1.bias"] = farol.zeros(2)})
    end, "farol: load_state_dict: 1.weight is a string, expected a tensor")()
    same_state(s, before)
  end)
end)

describe("files", function()
  local dir = tmp .. "_farol_errors"
  setup(function() os.execute("mkdir -p '" .. dir .. "'") end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  bad("load of a missing file", function() return farol.load("/nonexistent/file.safetensors") end,
      "farol: load: /nonexistent/file.safetensors: cannot open (No such file or directory)")
  bad("load of a missing .npy file", function() return farol.load("/nonexistent/file.npy") end,
      "farol: load: /nonexistent/file.npy: cannot open")
  bad("load of a directory", function() return farol.load(dir) end,
      "farol: load: " .. dir .. ": not a regular file")
  bad("load without a path", function() return farol.load() end,
      "bad argument #1 to 'load'", "string expected, got no value")
  bad("load of a text file", function()
    return farol.load(write_file(dir .. "/text.safetensors", "not a safetensors file at all"))
  end, "farol: load:", "text.safetensors: header length", "exceeds the 100 MB limit")
  bad("load of an empty file", function() return farol.load(write_file(dir .. "/empty.safetensors", "")) end,
      "farol: load:", "empty.safetensors: 0 bytes, too short for the 8-byte header length")
  bad("load of a file shorter than its header", function()
    return farol.load(write_file(dir .. "/short.safetensors", string.pack("<I8", 100) .. "{}"))
  end, "farol: load:", "short.safetensors")
  bad("load of a file whose data is cut short", function()
    return farol.load(safetensors_file(dir .. "/cut.safetensors",
      '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', "abcd"))
  end, "farol: load:", "tensor 'a': data_offsets [0, 16] outside the data area (4 bytes)")
  bad("load of a tensor whose shape does not match its bytes", function()
    return farol.load(safetensors_file(dir .. "/shape.safetensors",
      '{"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}', string.rep("\0", 16)))
  end, "farol: load:", "tensor 'a': data_offsets [0, 16] span 16 bytes but F32 [5] needs 20")
  bad("load of an unsupported dtype", function()
    return farol.load(safetensors_file(dir .. "/f8.safetensors",
      '{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}', string.rep("\0", 4)))
  end, "farol: load:", "tensor 'a': unsupported dtype 'F8_E4M3'")
  bad("load of a garbage .npy file", function() return farol.load(write_file(dir .. "/bad.npy", "garbage")) end,
      "farol: load:", "bad.npy: 7 bytes, too short for a .npy header")

  bad("save of a non-tensor value", function() farol.save(dir .. "/a.safetensors", {a = 5}) end,
      "farol: save: a is a number, expected farol.Tensor")
  bad("save with a non-string name", function() farol.save(dir .. "/b.safetensors", {x}) end,
      "farol: save: tensor names must be strings, got a number key")
  bad("save with the reserved name __metadata__", function() farol.save(dir .. "/c.safetensors", {__metadata__ = x}) end,
      "farol: save:", "tensor name '__metadata__' is reserved")
  bad("save to an unwritable path", function() farol.save("/nonexistent/dir/o.safetensors", {a = x}) end,
      "farol: save: /nonexistent/dir/o.safetensors: cannot open")
  bad("save of a tensor instead of a table", function() farol.save(dir .. "/d.safetensors", x) end,
      "bad argument #2 to 'save'", "table expected, got farol.Tensor")
  bad("save with metadata that is not strings", function()
    farol.save(dir .. "/e.safetensors", {a = x}, {metadata = {k = 5}})
  end, "farol: save: metadata keys and values must be strings")
  bad("save with metadata that is not a table", function()
    farol.save(dir .. "/f.safetensors", {a = x}, {metadata = 5})
  end, "farol: save: option metadata must be a table, got number")
  bad("save with options that are not a table", function() farol.save(dir .. "/f.safetensors", {a = x}, 5) end,
      "farol: save: options must be a table, got number")
  bad("save with metadata given the old way (an unknown option)", function()
    farol.save(dir .. "/f.safetensors", {a = x}, {note = "hi"})
  end, "farol: save: unknown option 'note' (valid: dtype, metadata)")
  bad("save to an unknown extension", function() farol.save(dir .. "/g.pt", {a = x}) end,
      "farol: save: " .. dir .. "/g.pt: unknown extension (farol writes .safetensors and .npy)")
  bad("save of two tensors to .npy", function() farol.save(dir .. "/h.npy", {a = x, b = x}) end,
      "farol: save: " .. dir .. "/h.npy: a .npy file holds one tensor, got a table of 2 entries")
  bad("save of a string to .npy", function() farol.save(dir .. "/i.npy", "x") end,
      "farol: save: " .. dir .. "/i.npy: expected a tensor, got string")
  bad("save of metadata to .npy", function() farol.save(dir .. "/j.npy", x, {metadata = {k = "v"}}) end,
      "farol: save: " .. dir .. "/j.npy: .npy files have no metadata")
  bad("save as an integer dtype", function() farol.save(dir .. "/k.safetensors", {a = x}, {dtype = "int32"}) end,
      "farol: save: " .. dir .. "/k.safetensors: cannot write floating tensors as 'int32' (valid: float32, float64, float16, bfloat16)")
  bad("save to .npy as bfloat16 (numpy has none)", function() farol.save(dir .. "/l.npy", x, {dtype = "bfloat16"}) end,
      "farol: save: " .. dir .. "/l.npy: cannot write floating tensors as 'bfloat16' (.npy takes: float32, float64, float16)")
  bad("save with a dtype that is not a string", function() farol.save(dir .. "/m.npy", x, {dtype = 16}) end,
      "farol: save: option dtype must be a string, got number")
  bad("load with a stray argument", function() return farol.load(dir .. "/a.safetensors", "x") end,
      "farol: load: takes one argument (path), got 2")
  bad("save without a path", function() farol.save(nil, {a = x}) end,
      "bad argument #1 to 'save'", "string expected, got nil")

  it("a failing save leaves no file behind", function()
    local path = dir .. "/none.safetensors"
    H.fails(function() farol.save(path, {a = x, b = "no"}) end, "farol: save: b is a string")()
    assert.is_nil(io.open(path, "rb"))
  end)
end)

describe("freed tensors", function()
  local t = farol.ones(2, 3)
  t:free()
  bad("a method on a freed tensor", function() return t:view(6) end,
      "farol: view: tensor was freed (argument #1)")
  bad("a freed tensor on the left of +", function() return t + 1 end,
      "farol: add: tensor was freed (argument #1)")
  bad("a freed tensor on the right of +", function() return 1 + t end,
      "farol: add: tensor was freed (argument #2)")
  bad("a function of a freed tensor", function() return farol.exp(t) end,
      "farol: exp: tensor was freed (argument #1)")
  bad("indexing a freed tensor", function() return t[1] end,
      "farol: index: tensor was freed (argument #1)")
  bad("assigning into a freed tensor", function() t[1] = 1 end,
      "farol: newindex: tensor was freed (argument #1)")
  bad("the length of a freed tensor", function() return #t end,
      "farol: len: tensor was freed (argument #1)")
  bad("the shape of a freed tensor", function() return t.shape end,
      "farol: index: tensor was freed (argument #1)")
  bad("the size of a freed tensor", function() return t:size() end,
      "farol: size: tensor was freed (argument #1)")
  bad("item of a freed tensor", function() return t:item() end,
      "farol: item: tensor was freed (argument #1)")
  bad("copy_ from a freed tensor", function() return x:clone():copy_(t) end,
      "farol: copy_: tensor was freed (argument #2)")
  bad("matmul with a freed tensor", function() return farol.matmul(x, t) end,
      "farol: matmul: tensor was freed (argument #2)")
  bad("a freed tensor in the list given to cat", function() return farol.cat({x, t}) end,
      "farol: cat: tensor was freed (an element of a list argument)")
  bad("backward of a freed tensor", function() return t:backward() end,
      "farol: backward: tensor was freed (argument #1)")
  bad("grad of a freed tensor", function() return farol.grad(t, x) end,
      "farol: grad: tensor was freed (argument #1)")
  bad("farol.tensor of a freed tensor", function() return farol.tensor(t) end,
      "farol: tensor: tensor was freed (argument #1)")
  bad("a freed Saliency input", function() return farol.Saliency(nn.Linear(3, 2)):attribute(t, 1) end,
      "farol: Saliency: the input was freed")
  bad("a freed Saliency input in an array", function() return farol.Saliency(nn.Linear(3, 2)):attribute({x, t}, 1) end,
      "farol: Saliency: input 2 was freed")
  bad("a freed Saliency target tensor", function()
    local tg = farol.tensor({1, 2}, "int64")
    tg:free()
    return farol.Saliency(nn.Linear(3, 2)):attribute(x, tg)
  end, "farol: Saliency: the target tensor was freed")
  bad("saving a freed tensor", function() farol.save(tmp .. "_freed.safetensors", {a = t}) end,
      "farol: save: a was freed")

  it("prints and frees again without an error", function()
    assert.are.equal("tensor(<freed>)", tostring(t))
    t:free()
  end)
end)
