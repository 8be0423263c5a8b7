-- No silent option: every function and module that takes an options table
-- refuses an unknown key with a message naming it and the valid ones (one
-- shared check, farol.check_options); unknown tensor fields and table
-- indices raise.
local farol = require("farol")
local H = require("helpers")
local nn = farol.nn

-- fn() must raise exactly msg
local function raises(fn, msg)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  assert.are.equal(msg, tostring(err))
end

describe("farol.check_options", function()
  it("returns the table, or a new empty one for nil", function()
    local t = {a = 1}
    assert.are.equal(t, farol.check_options(t, "f", {"a", "b"}))
    local e = farol.check_options(nil, "f", {"a"})
    assert.are.same({}, e)
  end)

  it("names the unknown key and lists the valid ones in order", function()
    raises(function() farol.check_options({strid = 2}, "conv2d", {"stride", "padding"}) end,
           "farol: conv2d: unknown option 'strid' (valid: stride, padding)")
    raises(function() farol.check_options({2}, "f", {"a"}) end, "farol: f: unknown option 1 (valid: a)")
    raises(function() farol.check_options({x = 1}, "f", {}) end, "farol: f: unknown option 'x' (valid: none)")
  end)

  it("refuses options that are not a table and a bad list of names", function()
    raises(function() farol.check_options(3, "f", {"a"}) end, "farol: f: options must be a table, got number")
    raises(function() farol.check_options({}, "f", {1}) end,
           "farol: check_options: valid[1] must be a string, got number")
  end)
end)

describe("functional ops refuse unknown options", function()
  local x, w = farol.randn(1, 2, 6, 6), farol.randn(3, 2, 3, 3)

  it("conv1d and conv2d", function()
    raises(function() farol.conv2d(x, w, nil, {strid = 2}) end,
           "farol: conv2d: unknown option 'strid' (valid: stride, padding, dilation, groups)")
    raises(function() farol.conv1d(farol.randn(1, 2, 6), farol.randn(3, 2, 3), nil, {pad = 1}) end,
           "farol: conv1d: unknown option 'pad' (valid: stride, padding, dilation, groups)")
    raises(function() farol.nn.functional.conv2d(x, w, nil, 5) end,
           "farol: conv2d: options must be a table, got number")
  end)

  it("max_pool2d and avg_pool2d, with their own valid sets", function()
    raises(function() farol.max_pool2d(x, 2, {ceilmode = true}) end,
           "farol: max_pool2d: unknown option 'ceilmode' (valid: stride, padding, ceil_mode)")
    raises(function() farol.max_pool2d(x, 2, {count_include_pad = false}) end,
           "farol: max_pool2d: unknown option 'count_include_pad' (valid: stride, padding, ceil_mode)")
    raises(function() x:avg_pool2d(2, {strides = 1}) end,
           "farol: avg_pool2d: unknown option 'strides' (valid: stride, padding, ceil_mode, count_include_pad)")
    raises(function() farol.avg_pool2d(x, 2, {ceil_mode = 1}) end,
           "farol: avg_pool2d: ceil_mode must be a boolean, got number")
  end)
end)

describe("modules refuse unknown options", function()
  it("at construction", function()
    raises(function() nn.Linear(3, 4, {biass = false}) end,
           "farol: nn.Linear: unknown option 'biass' (valid: bias)")
    raises(function() nn.Conv1d(3, 4, 3, {dilations = 2}) end,
           "farol: nn.Conv1d: unknown option 'dilations' (valid: stride, padding, dilation, groups, bias)")
    raises(function() nn.Conv2d(3, 4, 3, {strid = 2}) end,
           "farol: nn.Conv2d: unknown option 'strid' (valid: stride, padding, dilation, groups, bias)")
    raises(function() nn.MaxPool2d(2, {ceil = true}) end,
           "farol: nn.MaxPool2d: unknown option 'ceil' (valid: stride, padding, ceil_mode)")
    raises(function() nn.AvgPool2d(2, {count_include_pads = true}) end,
           "farol: nn.AvgPool2d: unknown option 'count_include_pads' " ..
           "(valid: stride, padding, ceil_mode, count_include_pad)")
    raises(function() nn.BatchNorm2d(3, {epsilon = 1e-3}) end,
           "farol: nn.BatchNorm2d: unknown option 'epsilon' (valid: eps, momentum, affine, track_running_stats)")
    raises(function() nn.LayerNorm(3, {affine = false}) end,
           "farol: nn.LayerNorm: unknown option 'affine' (valid: eps, elementwise_affine, bias)")
    raises(function() nn.MultiheadAttention(4, 2, {batchfirst = true}) end,
           "farol: nn.MultiheadAttention: unknown option 'batchfirst' (valid: batch_first, bias, dropout)")
    H.fails(function() nn.TransformerEncoderLayer(4, 2, {dim_ff = 8}) end,
            "farol: nn.TransformerEncoderLayer: unknown option 'dim_ff' (valid: dim_feedforward, dropout, ")()
    raises(function() farol.models.resnet18{classes = 10} end,
           "farol: models.resnet18: unknown option 'classes' (valid: num_classes)")
  end)

  it("at call time", function()
    local mha = nn.MultiheadAttention(4, 2)
    local q = farol.randn(3, 1, 4)
    H.fails(function() mha(q, q, q, {need_weight = true}) end,
            "farol: nn.MultiheadAttention: unknown option 'need_weight' (valid: key_padding_mask, ")()
    raises(function() nn.TransformerEncoderLayer(4, 2)(q, {mask = 1}) end,
           "farol: nn.TransformerEncoderLayer: unknown option 'mask' (valid: src_key_padding_mask, src_mask)")
  end)

  it("in load_state_dict", function()
    local m = nn.Linear(2, 2)
    raises(function() m:load_state_dict(m:state_dict(), {strictt = false}) end,
           "farol: load_state_dict: unknown option 'strictt' (valid: strict)")
    raises(function() m:load_state_dict({}, {strict = "no"}) end,
           "farol: load_state_dict: strict must be a boolean, got string")
    assert.are.same({missing = {"bias", "weight"}, unexpected = {}}, m:load_state_dict({}, {strict = false}))
  end)

  it("and the valid options still take effect", function()
    assert.is_nil(nn.Linear(3, 4, {bias = false}).bias)
    assert.are.same({1, 2, 2, 2}, farol.conv2d(farol.randn(1, 2, 6, 6), farol.randn(2, 2, 3, 3), nil,
                                               {stride = 2}).shape)
  end)
end)

describe("tensor fields and indices", function()
  local x = farol.randn(2, 3)

  it("an unknown field raises naming it", function()
    raises(function() return x.shpae end, "farol: tensor has no field 'shpae'")
    raises(function() return x:siez() end, "farol: tensor has no field 'siez'")
    assert.are.same({2, 3}, x.shape)
    assert.is_nil(x.grad)
  end)

  it("a table or other non-integer key raises", function()
    raises(function() return x[{1, 2}] end,
           "farol: index: tensors take an integer index (x[i]) or a field name, got table " ..
           "(use x:narrow, x:select or x:get for more)")
    raises(function() return x[true] end,
           "farol: index: tensors take an integer index (x[i]) or a field name, got boolean " ..
           "(use x:narrow, x:select or x:get for more)")
    raises(function() x[{1, 2}] = 0 end, "farol: index: tensors take only integer keys for assignment, got table")
    assert.are.equal(x:get(1, 2), x[1][2])
  end)
end)
