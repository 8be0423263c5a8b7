-- farol.viz: Captum's normalisation on all 36 cases of
-- tests/fixtures/viz/normalize.safetensors (3 attributions x 4 signs x 3
-- outlier percentages), and the pictures themselves: written as PNG, read
-- back, sizes and the colours of the most and least attributed pixels.
local farol = require("farol")
local H = require("helpers")
local viz = farol.viz

local fx = H.load("viz/normalize.safetensors")

local function rgb255(pic, i, j)
  local c = {}
  for k = 1, pic:size(1) do c[k] = math.floor(pic:get(k, i, j) * 255 + 0.5) end
  return c
end

-- a 1 x 4 x 5 attribution with known extremes: +4 at (2, 3), -3 at (4, 1), 0 at (1, 1)
local function small_attr()
  local a = farol.zeros(1, 4, 5)
  a:set(4, 1, 2, 3)
  a:set(-3, 1, 4, 1)
  a:set(1, 1, 3, 5)
  a:set(-0.5, 1, 1, 4)
  return a
end

describe("viz.normalize", function()
  for k = 1, 3 do
    for _, sign in ipairs({"all", "positive", "negative", "absolute_value"}) do
      for _, perc in ipairs({"2", "0.5", "10"}) do
        local name = string.format("norm.%d.%s.%s", k, sign, perc)
        it("equals Captum for " .. name, function()
          local got = viz.normalize(fx["attr." .. k], sign, tonumber(perc))
          H.close(got, fx[name], 0, 1e-15, name)
        end)
      end
    end
  end

  it("defaults to absolute_value and outlier_perc 2, as Captum", function()
    H.close(viz.normalize(fx["attr.2"]), fx["norm.2.absolute_value.2"], 0, 1e-15, "defaults")
  end)

  it("validates its arguments", function()
    H.fails(viz.normalize, "farol: viz.normalize: sign must be")(fx["attr.1"], "abs")
    H.fails(viz.normalize, "farol: viz.normalize: outlier_perc must be a number from 0 to 100, got 101")(fx["attr.1"], "all", 101)
    H.fails(viz.normalize, "farol: viz.normalize: attribution must be a C x H x W or H x W tensor, got 8")(farol.zeros(8))
  end)
end)

describe("viz pictures", function()
  local tmp = os.tmpname() .. ".png"
  after_each(function() os.remove(tmp) end)

  it("heat_map, absolute_value: darkest Blues at the largest |value|, palest at zero", function()
    viz.save(tmp, small_attr(), nil, {scale = 3})
    local pic = farol.image.load(tmp)
    assert.are.same({3, 12, 15}, pic:size())
    assert.are.same({0x08, 0x30, 0x6b}, rgb255(pic, 4, 7))   -- pixel (2, 3), scaled by 3
    assert.are.same({0xf7, 0xfb, 0xff}, rgb255(pic, 1, 1))   -- a zero
  end)

  it("heat_map, all: green for the most positive, red for the most negative, white at zero", function()
    viz.save(tmp, small_attr(), nil, {sign = "all", outlier_perc = 0})
    local pic = farol.image.load(tmp)
    assert.are.same({3, 4, 5}, pic:size())
    assert.are.same({0, 128, 0}, rgb255(pic, 2, 3))
    local red = rgb255(pic, 4, 1)          -- -3 / 4 = -0.75: three quarters of the way to red
    assert.is_true(red[1] == 255 and red[2] < 80 and red[3] < 80)
    -- zero sits at bin 128 of 256, a hair past white towards green, as in matplotlib
    assert.are.same({254, 255, 254}, rgb255(pic, 1, 1))
  end)

  it("positive uses Greens and negative Reds, each darkest at its extreme", function()
    viz.save(tmp, small_attr(), nil, {sign = "positive", outlier_perc = 0})
    local pic = farol.image.load(tmp)
    assert.are.same({0x00, 0x44, 0x1b}, rgb255(pic, 2, 3))
    assert.are.same({0xf7, 0xfc, 0xf5}, rgb255(pic, 4, 1))  -- negative: nothing in this map
    viz.save(tmp, small_attr(), nil, {sign = "negative", outlier_perc = 0})
    pic = farol.image.load(tmp)
    assert.are.same({0x67, 0x00, 0x0d}, rgb255(pic, 4, 1))
    assert.are.same({0xff, 0xf5, 0xf0}, rgb255(pic, 2, 3))
  end)

  it("masked_image, alpha_scaling, original_image and blended_heat_map follow Captum", function()
    local img = farol.rand(3, 4, 5)
    local attr = small_attr()
    local orig = viz.visualize(attr, img, {method = "original_image"})
    for k = 1, 3 do
      for i = 1, 4 do
        for j = 1, 5 do
          assert.are.equal(math.floor(img:get(k, i, j) * 255), math.floor(orig:get(k, i, j) * 255 + 0.5))
        end
      end
    end
    local masked = viz.visualize(attr, img, {method = "masked_image", outlier_perc = 0})
    local px = math.floor(img:get(1, 2, 3) * 255)
    assert.are.equal(px, math.floor(masked:get(1, 2, 3) * 255 + 0.5))  -- weight 1 keeps the pixel
    assert.are.equal(0, masked:get(2, 1, 1))                            -- weight 0 blacks it out
    viz.save(tmp, attr, img, {method = "alpha_scaling", outlier_perc = 0})
    local rgba = farol.image.load(tmp)
    assert.are.same({4, 4, 5}, rgba:size())
    assert.are.equal(255, rgb255(rgba, 2, 3)[4])
    assert.are.equal(0, rgb255(rgba, 1, 1)[4])
    assert.are.equal(191, rgb255(rgba, 4, 1)[4])                        -- |-3| / 4 * 255, truncated
    -- blended: half the heat map over the autoscaled grey image
    local grey = farol.zeros(1, 4, 5)
    grey:set(1, 1, 2, 3)
    local blended = viz.visualize(attr, grey, {method = "blended_heat_map", outlier_perc = 0})
    H.close(blended:select(2, 2):select(2, 3), farol.tensor({(0x08 / 255 + 1) / 2, (0x30 / 255 + 1) / 2,
                                                             (0x6b / 255 + 1) / 2}), 0, 1e-6, "blended peak")
    H.close(blended:select(2, 1):select(2, 1), farol.tensor({0xf7, 0xfb, 0xff}) / 510, 1e-6, 1e-6, "blended zero")
  end)

  it("grid: cells, titles and sizes", function()
    local img = farol.rand(1, 4, 5)
    local rows = {
      {{image = img, title = "digit 7\npred 7"}, {attr = small_attr(), title = "Saliency"}},
      {img, {attr = small_attr(), image = img, method = "blended_heat_map", sign = "all"}},
    }
    local pic = viz.grid(rows, {path = tmp, scale = 10, padding = 4})
    local back = farol.image.load(tmp)
    -- 4 + 2 * (50 + 4) wide; 4 + (2 title lines * 9 + 40 + 4) + (40 + 4) high
    assert.are.same({3, 110, 112}, back:size())
    H.close(back, pic, 0, 0.5 / 255 + 1e-6, "grid as written")
    -- title ink: some black pixels in the first row's title band, none in the second row's (no titles)
    local band = back:narrow(2, 5, 18):narrow(3, 5, 50)
    assert.is_true(band:min():item() == 0)
    -- the heat map cell's darkest pixel is at attribution (2, 3)
    assert.are.same({0x08, 0x30, 0x6b}, rgb255(back, 4 + 18 + 10 + 5, 4 + 54 + 20 + 5))
  end)

  it("validates options, methods and cells", function()
    local a = small_attr()
    H.fails(viz.visualize, "farol: viz.visualize: unknown option 'sgn'")(a, nil, {sgn = "all"})
    H.fails(viz.visualize, "farol: viz.visualize: method must be")(a, nil, {method = "heatmap"})
    H.fails(viz.visualize, "farol: viz.visualize: masked_image cannot show both signs")(a, farol.rand(3, 4, 5),
                                                                                         {method = "masked_image", sign = "all"})
    H.fails(viz.visualize, "farol: viz.visualize: method blended_heat_map needs the original image")(a, nil,
                                                                                                   {method = "blended_heat_map"})
    H.fails(viz.visualize, "farol: viz.visualize: image is 3x5 pixels, the attribution 4x5")(a, farol.rand(3, 3, 5),
                                                                                           {method = "original_image"})
    H.fails(viz.visualize, "farol: viz.visualize: cmap must be one of")(a, nil, {cmap = "jet"})
    H.fails(viz.grid, "farol: viz.grid: rows[1][1]: unknown key 'titel'")({{{attr = a, titel = "x"}}})
    H.fails(viz.grid, "farol: viz.grid: unknown option 'scal'")({{a:squeeze(1):unsqueeze(1)}}, {scal = 2})
    H.fails(viz.grid, "farol: viz.grid: rows must be a non-empty array of rows")({})
  end)
end)

describe("the demo (examples/digits.lua)", function()
  it("prints the shipped model's accuracy and writes a PNG grid of real digits", function()
    local runner = os.getenv("FAROL_RUNNER") or "build/farol"
    local out = os.tmpname()
    os.remove(out)
    local p = io.popen(runner .. " " .. H.fixtures .. "/../../examples/digits.lua --out " .. out .. " 2>&1")
    local text = p:read("a")
    assert.is_true(p:close(), text)
    assert.is_truthy(text:find("353 of 360 held-out digits right, accuracy 98.06 %", 1, true), text)
    local methods = text:match("attributed 4 digits with ([^\n]*)")
    assert.is_truthy(methods, text)
    local _, commas = methods:gsub(",", "")
    local path = text:match("heat maps written to (%S+)")
    assert.are.equal(out .. "/digits_attributions.png", path)
    local pic = farol.image.load(path)
    -- 4 rows of 8x8 digits at scale 12 under two title lines; columns: the
    -- digit, each method, Saliency blended; padding 6
    local ncols = 2 + commas + 1
    assert.are.same({3, 6 + 4 * (18 + 96 + 6), 6 + ncols * (96 + 6)}, pic:size())
    os.remove(path)
    os.remove(out)
  end)
end)
