-- farol.viz: attributions drawn as Captum's visualize_image_attr draws them,
-- written as PNG without Python.  The same normalisation (channels summed,
-- the sign kept, scaled by the cumulative-sum threshold that leaves out
-- outlier_perc % of the mass, clipped), the same methods (heat_map,
-- blended_heat_map, original_image, masked_image, alpha_scaling) and the same
-- default colour maps; plus a grid of several pictures with titles.
local farol = require("farol")
local image = require("farol.image")
local font = require("farol.font")

local viz = {}
local check_options = image._check_options

local METHODS = {heat_map = true, blended_heat_map = true, original_image = true,
                 masked_image = true, alpha_scaling = true}
local SIGNS = {all = true, positive = true, negative = true, absolute_value = true}

-- Colour maps: evenly spaced anchors, sampled into 256 entries and looked
-- up as matplotlib does.  The sequential ones are ColorBrewer's 9-class maps
-- (matplotlib's Greens, Reds, Blues, Greys); RdWhGn is what Captum builds
-- for sign "all" (red, white, matplotlib's green #008000).
local ANCHORS = {
  Greens = {"f7fcf5", "e5f5e0", "c7e9c0", "a1d99b", "74c476", "41ab5d", "238b45", "006d2c", "00441b"},
  Reds = {"fff5f0", "fee0d2", "fcbba1", "fc9272", "fb6a4a", "ef3b2c", "cb181d", "a50f15", "67000d"},
  Blues = {"f7fbff", "deebf7", "c6dbef", "9ecae1", "6baed6", "4292c6", "2171b5", "08519c", "08306b"},
  Greys = {"ffffff", "f0f0f0", "d9d9d9", "bdbdbd", "969696", "737373", "525252", "252525", "000000"},
  gray = {"000000", "ffffff"},
  RdWhGn = {"ff0000", "ffffff", "008000"},
  RdYlGn = {"a50026", "d73027", "f46d43", "fdae61", "fee08b", "ffffbf", "d9ef8b", "a6d96a", "66bd63",
            "1a9850", "006837"},
}
viz.colormaps = {}
for name in pairs(ANCHORS) do viz.colormaps[#viz.colormaps + 1] = name end
table.sort(viz.colormaps)

local luts = {}
local function lut(name)
  if luts[name] then return luts[name] end
  local hex = ANCHORS[name]
  local rgb = {}
  for i, h in ipairs(hex) do
    rgb[i] = {tonumber(h:sub(1, 2), 16) / 255, tonumber(h:sub(3, 4), 16) / 255, tonumber(h:sub(5, 6), 16) / 255}
  end
  local t, segs = {}, #rgb - 1
  for i = 0, 255 do
    local x = i / 255 * segs
    local k = math.min(math.floor(x), segs - 1)
    local f = x - k
    local a, b = rgb[k + 1], rgb[k + 2]
    t[i + 1] = {a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f, a[3] + (b[3] - a[3]) * f}
  end
  luts[name] = t
  return t
end

-- colour of v on a map spanning [vmin, vmax] (matplotlib: 256 bins, values
-- outside the span take the end colours)
local function color(map, v, vmin, vmax)
  local x = (v - vmin) / (vmax - vmin)
  local i = x ~= x and 0 or math.floor(x * 256)
  if i < 0 then i = 0 elseif i > 255 then i = 255 end
  return map[i + 1]
end

-- Captum's _cumulative_sum_threshold: the smallest sorted value at which the
-- running sum reaches percentile % of the total
local function cumulative_sum_threshold(values, percentile)
  local sorted = table.move(values, 1, #values, 1, {})
  table.sort(sorted)
  local total = 0
  for i = 1, #sorted do total = total + sorted[i] end
  local bound, cum = total * 0.01 * percentile, 0
  for i = 1, #sorted do
    cum = cum + sorted[i]
    if cum >= bound then return sorted[i] end
  end
  return sorted[#sorted]
end

local function check_sign(fn, sign)
  if not SIGNS[sign] then
    error(string.format("farol: %s: sign must be \"all\", \"positive\", \"negative\" or \"absolute_value\", got %s",
                        fn, tostring(sign)), 3)
  end
end

local function check_perc(fn, p)
  if type(p) ~= "number" or not (p >= 0 and p <= 100) then
    error(string.format("farol: %s: outlier_perc must be a number from 0 to 100, got %s", fn, tostring(p)), 3)
  end
end

-- the attribution as a float64 H x W map (channels summed)
local function combine(fn, attr)
  if not farol.is_tensor(attr) or (attr:dim() ~= 2 and attr:dim() ~= 3) then
    error(string.format("farol: %s: attribution must be a C x H x W or H x W tensor, got %s", fn,
                        farol.is_tensor(attr) and table.concat(attr:size(), "x") or type(attr)), 3)
  end
  local a = attr:detach():to("float64")
  if a:dim() == 3 then a = a:sum(1) end
  return a
end

-- the normalised map as a flat Lua array (row-major), plus its H and W
local function normalize_flat(attr, sign, outlier_perc)
  local h, w = attr:size(1), attr:size(2)
  local v = attr:reshape(-1):totable()
  local n = #v
  local vals, threshold = {}, nil
  if sign == "all" then
    for i = 1, n do vals[i] = math.abs(v[i]) end
    threshold = cumulative_sum_threshold(vals, 100.0 - outlier_perc)
    vals = v
  elseif sign == "positive" then
    for i = 1, n do vals[i] = v[i] > 0 and v[i] or 0.0 end
    threshold = cumulative_sum_threshold(vals, 100.0 - outlier_perc)
  elseif sign == "negative" then
    local abs = {}
    for i = 1, n do
      vals[i] = v[i] < 0 and v[i] or 0.0
      abs[i] = math.abs(vals[i])
    end
    threshold = -1 * cumulative_sum_threshold(abs, 100.0 - outlier_perc)
  else
    for i = 1, n do vals[i] = math.abs(v[i]) end
    threshold = cumulative_sum_threshold(vals, 100.0 - outlier_perc)
  end
  local out = {}
  for i = 1, n do
    -- an attribution that is zero everywhere (for this sign) shows as zero;
    -- Captum raises on that instead
    local x = threshold ~= 0 and vals[i] / threshold or 0.0
    out[i] = x < -1 and -1.0 or x > 1 and 1.0 or x
  end
  return out, h, w
end

local function to_rows(flat, h, w)
  local rows = {}
  for i = 1, h do rows[i] = table.move(flat, (i - 1) * w + 1, i * w, 1, {}) end
  return rows
end

-- viz.normalize(attr [, sign = "absolute_value" [, outlier_perc = 2]]) -> H x W float64
function viz.normalize(attr, sign, outlier_perc, ...)
  if select("#", ...) > 0 then error("farol: viz.normalize: at most 3 arguments (attr, sign, outlier_perc)", 2) end
  sign = sign or "absolute_value"
  outlier_perc = outlier_perc == nil and 2 or outlier_perc
  check_sign("viz.normalize", sign)
  check_perc("viz.normalize", outlier_perc)
  local flat, h, w = normalize_flat(combine("viz.normalize", attr), sign, outlier_perc)
  return farol.tensor(to_rows(flat, h, w), "float64")
end

local VISUALIZE_KEYS = {method = true, sign = true, outlier_perc = true, cmap = true, alpha_overlay = true,
                        scale = true}

-- the original image as 0..255 integers per channel (Captum: values of an
-- image whose maximum is at most 1 are scaled by 255 and truncated), as a
-- flat array per channel, with 1 or 2 channels shown as grey
local function image_pixels(fn, img, h, w)
  if not farol.is_tensor(img) or img:dim() ~= 3 then
    error(string.format("farol: %s: image must be a C x H x W tensor, got %s", fn,
                        farol.is_tensor(img) and table.concat(img:size(), "x") or type(img)), 4)
  end
  if img:size(2) ~= h or img:size(3) ~= w then
    error(string.format("farol: %s: image is %dx%d pixels, the attribution %dx%d", fn, img:size(2), img:size(3), h, w), 4)
  end
  local c = img:size(1)
  if c ~= 1 and c ~= 3 then error(string.format("farol: %s: image must have 1 or 3 channels, got %d", fn, c), 4) end
  local v = img:detach():to("float64"):reshape(c, -1):totable()
  local top = -math.huge
  for k = 1, c do for i = 1, #v[k] do if v[k][i] > top then top = v[k][i] end end end
  local s = top <= 1 and 255 or 1
  for k = 1, c do
    local ch = v[k]
    for i = 1, #ch do
      local x = ch[i] * s
      x = x >= 0 and math.floor(x) or math.ceil(x)
      ch[i] = x < 0 and 0 or x > 255 and 255 or x
    end
  end
  if c == 1 then v[2], v[3] = v[1], v[1] end
  return v
end

-- viz.visualize(attr [, image], {method, sign, outlier_perc, cmap, alpha_overlay, scale})
--   -> 3 x H x W float32 picture in [0, 1] (4 x H x W, RGBA, for alpha_scaling)
-- Captum's defaults: method "heat_map", sign "absolute_value", outlier_perc
-- 2, alpha_overlay 0.5; scale (an integer, default 1) enlarges each pixel.
function viz.visualize(attr, img, opts, ...)
  if select("#", ...) > 0 then error("farol: viz.visualize: at most 3 arguments (attr, image, options)", 2) end
  if opts == nil and type(img) == "table" and not farol.is_tensor(img) then img, opts = nil, img end
  opts = check_options("viz.visualize", opts, VISUALIZE_KEYS)
  local method = opts.method or "heat_map"
  local sign = opts.sign or "absolute_value"
  local perc = opts.outlier_perc == nil and 2 or opts.outlier_perc
  local alpha = opts.alpha_overlay == nil and 0.5 or opts.alpha_overlay
  local scale = opts.scale or 1
  if not METHODS[method] then
    error("farol: viz.visualize: method must be heat_map, blended_heat_map, original_image, masked_image or "
          .. "alpha_scaling, got " .. tostring(method), 2)
  end
  check_sign("viz.visualize", sign)
  check_perc("viz.visualize", perc)
  if type(alpha) ~= "number" or not (alpha >= 0 and alpha <= 1) then
    error("farol: viz.visualize: alpha_overlay must be a number from 0 to 1, got " .. tostring(alpha), 2)
  end
  if math.type(scale) ~= "integer" or scale < 1 or scale > 256 then
    error("farol: viz.visualize: scale must be an integer from 1 to 256, got " .. tostring(scale), 2)
  end
  local default_cmap = ({all = "RdWhGn", positive = "Greens", negative = "Reds", absolute_value = "Blues"})[sign]
  local cmap = opts.cmap or default_cmap
  if not ANCHORS[cmap] then
    error("farol: viz.visualize: cmap must be one of " .. table.concat(viz.colormaps, ", ") .. ", got "
          .. tostring(cmap), 2)
  end
  if (method == "masked_image" or method == "alpha_scaling") and sign == "all" then
    error("farol: viz.visualize: " .. method .. " cannot show both signs: choose sign positive, negative or "
          .. "absolute_value", 2)
  end
  if method ~= "heat_map" and img == nil then
    error("farol: viz.visualize: method " .. method .. " needs the original image", 2)
  end

  local norm, h, w = normalize_flat(combine("viz.visualize", attr), sign, perc)
  local n = h * w
  local px = img and image_pixels("viz.visualize", img, h, w)
  local out = {{}, {}, {}}
  if method == "heat_map" or method == "blended_heat_map" then
    local map, vmin = lut(cmap), sign == "all" and -1 or 0
    for i = 1, n do
      local c = color(map, norm[i], vmin, 1)
      out[1][i], out[2][i], out[3][i] = c[1], c[2], c[3]
    end
    if method == "blended_heat_map" then
      -- the grey image (channel mean) shown with matplotlib's autoscaled
      -- "gray" map, the heat map drawn over it with alpha_overlay
      local gray, lo, hi = {}, math.huge, -math.huge
      for i = 1, n do
        local g = (px[1][i] + px[2][i] + px[3][i]) / 3
        gray[i] = g
        if g < lo then lo = g end
        if g > hi then hi = g end
      end
      local gmap = lut("gray")
      for i = 1, n do
        local g = hi > lo and color(gmap, gray[i], lo, hi)[1] or 0
        for k = 1, 3 do out[k][i] = alpha * out[k][i] + (1 - alpha) * g end
      end
    end
  elseif method == "original_image" then
    for k = 1, 3 do for i = 1, n do out[k][i] = px[k][i] / 255 end end
  elseif method == "masked_image" then
    for k = 1, 3 do
      for i = 1, n do
        local x = math.floor(px[k][i] * norm[i])
        out[k][i] = (x < 0 and 0 or x > 255 and 255 or x) / 255
      end
    end
  else -- alpha_scaling
    out[4] = {}
    for k = 1, 3 do for i = 1, n do out[k][i] = px[k][i] / 255 end end
    for i = 1, n do
      local a = math.floor(norm[i] * 255)
      out[4][i] = (a < 0 and 0 or a > 255 and 255 or a) / 255
    end
  end
  for k = 1, #out do out[k] = to_rows(out[k], h, w) end
  local pic = farol.tensor(out)
  if scale > 1 then pic = image.resize(pic, {h * scale, w * scale}, {interpolation = "nearest"}) end
  return pic
end

-- viz.save(path, attr [, image], options) -> the picture, written as PNG
function viz.save(path, attr, img, opts, ...)
  if select("#", ...) > 0 then error("farol: viz.save: at most 4 arguments (path, attr, image, options)", 2) end
  if type(path) ~= "string" then error("farol: viz.save: path must be a string, got " .. type(path), 2) end
  local pic = viz.visualize(attr, img, opts)
  image.save(path, pic)
  return pic
end

-- draws text (one line) into the 3 x H x W canvas at (x, y), 1-based
local function draw_text(canvas, text, x, y, scale, rgb, max_width)
  local cw = canvas:size(3)
  for ci = 1, #text do
    local gx = x + (ci - 1) * font.advance * scale
    if (ci * font.advance - 1) * scale > max_width then break end
    local g = font.glyph(text:sub(ci, ci))
    for r = 1, font.height do
      local row = g[r]
      for c = 1, font.width do
        if row:byte(c) == 35 then -- '#'
          local px, py = gx + (c - 1) * scale, y + (r - 1) * scale
          if px + scale - 1 <= cw then
            for k = 1, 3 do canvas[k]:narrow(1, py, scale):narrow(2, px, scale):fill_(rgb[k]) end
          end
        end
      end
    end
  end
end

local function lines_of(title)
  local lines = {}
  if title == nil or title == "" then return lines end
  for line in (title .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

local CELL_KEYS = {attr = true, image = true, method = true, sign = true, outlier_perc = true, cmap = true,
                   alpha_overlay = true, title = true}
local GRID_KEYS = {path = true, scale = true, padding = true, font_scale = true}

-- viz.grid(rows [, {path, scale, padding, font_scale}]) -> 3 x H x W picture
-- rows: an array of rows, each an array of cells; a cell is a table with
-- attr, image, method, sign, outlier_perc, cmap, alpha_overlay (as
-- viz.visualize) and title (text, "\n" between lines), or a C x H x W image
-- tensor shown as it is.  Cells are drawn at `scale` (default: enough for
-- 112 pixels) on white; alpha_scaling pictures are composited over white.
-- With path, the grid is written there as PNG.
function viz.grid(rows, opts, ...)
  if select("#", ...) > 0 then error("farol: viz.grid: at most 2 arguments (rows, options)", 2) end
  opts = check_options("viz.grid", opts, GRID_KEYS)
  if type(rows) ~= "table" or #rows == 0 then error("farol: viz.grid: rows must be a non-empty array of rows", 2) end
  local pad = opts.padding or 6
  local fs = opts.font_scale or 1
  if math.type(pad) ~= "integer" or pad < 0 or pad > 256 then
    error("farol: viz.grid: padding must be an integer from 0 to 256, got " .. tostring(pad), 2)
  end
  if math.type(fs) ~= "integer" or fs < 1 or fs > 8 then
    error("farol: viz.grid: font_scale must be an integer from 1 to 8, got " .. tostring(fs), 2)
  end
  if opts.path ~= nil and type(opts.path) ~= "string" then
    error("farol: viz.grid: path must be a string, got " .. type(opts.path), 2)
  end
  -- render every cell at scale 1 first
  local pics, titles, maxh, maxw = {}, {}, 0, 0
  for r, row in ipairs(rows) do
    if type(row) ~= "table" or #row == 0 then
      error(string.format("farol: viz.grid: rows[%d] must be a non-empty array of cells", r), 2)
    end
    pics[r], titles[r] = {}, {}
    for c, cell in ipairs(row) do
      local pic, title
      if farol.is_tensor(cell) then
        if cell:dim() ~= 3 or (cell:size(1) ~= 1 and cell:size(1) ~= 3) then
          error(string.format("farol: viz.grid: rows[%d][%d] must be a 1 or 3 x H x W image, got %s", r, c,
                              table.concat(cell:size(), "x")), 2)
        end
        pic = cell:detach():to("float32"):clamp(0, 1)
        if pic:size(1) == 1 then pic = pic:expand(3, pic:size(2), pic:size(3)) end
      elseif type(cell) == "table" then
        for k in pairs(cell) do
          if not CELL_KEYS[k] then
            error(string.format("farol: viz.grid: rows[%d][%d]: unknown key '%s'", r, c, tostring(k)), 2)
          end
        end
        if cell.title ~= nil and type(cell.title) ~= "string" then
          error(string.format("farol: viz.grid: rows[%d][%d].title must be a string", r, c), 2)
        end
        title = cell.title
        local method = cell.method or (cell.attr and "heat_map" or "original_image")
        local attr = cell.attr
        if attr == nil then
          if method ~= "original_image" then
            error(string.format("farol: viz.grid: rows[%d][%d]: method %s needs attr", r, c, method), 2)
          end
          if not farol.is_tensor(cell.image) or cell.image:dim() ~= 3 then
            error(string.format("farol: viz.grid: rows[%d][%d]: image must be a C x H x W tensor", r, c), 2)
          end
          attr = farol.zeros(cell.image:size(2), cell.image:size(3))
        end
        pic = viz.visualize(attr, cell.image, {method = method, sign = cell.sign, outlier_perc = cell.outlier_perc,
                                               cmap = cell.cmap, alpha_overlay = cell.alpha_overlay})
        if pic:size(1) == 4 then -- over white
          local a = pic:narrow(1, 4, 1)
          pic = pic:narrow(1, 1, 3) * a + (a * -1 + 1)
        end
      else
        error(string.format("farol: viz.grid: rows[%d][%d] must be a cell table or an image tensor, got %s", r, c,
                            type(cell)), 2)
      end
      pics[r][c], titles[r][c] = pic, lines_of(title)
      maxh, maxw = math.max(maxh, pic:size(2)), math.max(maxw, pic:size(3))
    end
  end
  local scale = opts.scale or math.max(1, math.ceil(112 / math.max(maxh, maxw)))
  if math.type(scale) ~= "integer" or scale < 1 or scale > 256 then
    error("farol: viz.grid: scale must be an integer from 1 to 256, got " .. tostring(scale), 2)
  end
  local cellw = maxw * scale
  local ncols = 0
  for _, row in ipairs(pics) do ncols = math.max(ncols, #row) end
  -- each row: title lines (as many as its longest title), then the pictures
  local line_h = font.line * fs
  local heights, total_h = {}, pad
  for r = 1, #pics do
    local nl = 0
    for _, t in ipairs(titles[r]) do nl = math.max(nl, #t) end
    heights[r] = nl * line_h
    total_h = total_h + heights[r] + maxh * scale + pad
  end
  local total_w = pad + ncols * (cellw + pad)
  local canvas = farol.ones(3, total_h, total_w)
  local y = pad + 1
  for r = 1, #pics do
    for c, pic in ipairs(pics[r]) do
      local x = pad + 1 + (c - 1) * (cellw + pad)
      for l, line in ipairs(titles[r][c]) do
        draw_text(canvas, line, x, y + (l - 1) * line_h, fs, {0, 0, 0}, cellw)
      end
      local ph, pw = pic:size(2) * scale, pic:size(3) * scale
      if scale > 1 then pic = image.resize(pic, {ph, pw}, {interpolation = "nearest"}) end
      canvas:narrow(2, y + heights[r], ph):narrow(3, x, pw):copy_(pic)
    end
    y = y + heights[r] + maxh * scale + pad
  end
  if opts.path then image.save(opts.path, canvas) end
  return canvas
end

farol.viz = viz
return viz
