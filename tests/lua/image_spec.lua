-- farol.image: PNG/JPEG decoding against torchvision's view of the same
-- files, PNG round trips, hostile files, and the transforms against
-- torchvision's results (tests/fixtures/viz/image.safetensors, made by
-- tests/tools/make_image_fixtures.py).
local farol = require("farol")
local H = require("helpers")
local image = farol.image

local dir = H.fixtures .. "/viz/"
local fx, meta = farol.load(dir .. "image.safetensors")

local read, write = H.read_file, H.write_file

-- CRC-32 (PNG's), to build a well-formed header that declares a huge image
local function crc32(s)
  local crc = 0xffffffff
  for i = 1, #s do
    crc = crc ~ s:byte(i)
    for _ = 1, 8 do
      crc = (crc & 1) ~= 0 and ((crc >> 1) ~ 0xedb88320) or (crc >> 1)
    end
  end
  return crc ~ 0xffffffff
end

local function png_header(w, h)
  local ihdr = "IHDR" .. string.pack(">I4I4BBBBB", w, h, 8, 2, 0, 0, 0)
  return "\137PNG\r\n\26\n" .. string.pack(">I4", 13) .. ihdr .. string.pack(">I4", crc32(ihdr))
end

-- the fixture's {"src": ..., "size": ...} metadata
local function spec(name)
  local src = meta[name]:match('"src": *"([^"]+)"')
  local size = meta[name]:match('"size": *(%b[])')
  if size then
    local t = {}
    for v in size:gmatch("%d+") do t[#t + 1] = math.tointeger(tonumber(v)) end
    return fx[src], t
  end
  return fx[src], math.tointeger(tonumber(meta[name]:match('"size": *(%d+)')))
end

describe("image.load", function()
  it("reads RGB and grey PNGs as C x H x W floats in [0, 1]", function()
    local rgb = image.load(dir .. "rgb.png")
    assert.are.equal("float32", rgb:dtype())
    H.close(rgb, fx.rgb_png, 0, 1e-7, "rgb.png")
    H.close(image.load(dir .. "gray.png"), fx.gray_png, 0, 1e-7, "gray.png")
  end)

  it("reads JPEG within two levels of libjpeg's decoding", function()
    H.close(image.load(dir .. "smooth.jpg"), fx.jpeg_decoded, 0, 2.5 / 255, "smooth.jpg")
  end)

  it("converts channels on request", function()
    local g = image.load(dir .. "rgb.png", {channels = 1})
    assert.are.same({1, 6, 5}, g:size())
    local c4 = image.load(dir .. "gray.png", {channels = 4})
    assert.are.same({4, 4, 7}, c4:size())
    H.close(c4:narrow(1, 4, 1), farol.ones(1, 4, 7), 0, 0, "alpha")
    H.close(c4:narrow(1, 2, 1), fx.gray_png, 0, 1e-7, "grey to RGB")
  end)

  it("gives clean errors for bad files", function()
    local tmp = os.tmpname()
    local png = read(dir .. "rgb.png")
    H.fails(image.load, "farol: image.load: ", "truncated")(write(tmp, png:sub(1, #png // 2)))
    local jpg = read(dir .. "smooth.jpg")
    for _, n in ipairs({#jpg // 2, #jpg - 8}) do
      H.fails(image.load, "farol: image.load: ", "truncated")(write(tmp, jpg:sub(1, n)))
    end
    H.fails(image.load, "farol: image.load: ", "not a PNG or JPEG")(write(tmp, "hello, not an image\n"))
    H.fails(image.load, "farol: image.load: ", "not a PNG or JPEG")(write(tmp, ""))
    H.fails(image.load, "farol: image.load: ", "declares 100000 x 100000 pixels")(write(tmp, png_header(100000, 100000)))
    H.fails(image.load, "farol: image.load: ", "declares 9000 x 9000 pixels")(write(tmp, png_header(9000, 9000)))
    os.remove(tmp)
    H.fails(image.load, "farol: image.load: ", "cannot open")(dir .. "no-such-file.png")
    H.fails(image.load, "farol: image.load: ", "not a regular file")(dir)
    H.fails(image.load, "farol: image.load: path must be a string")(nil)
    H.fails(image.load, "farol: image.load: channels must be 1, 2, 3 or 4")(dir .. "rgb.png", {channels = 5})
    H.fails(image.load, "unknown option 'chanels'")(dir .. "rgb.png", {chanels = 3})
  end)
end)

describe("image.save", function()
  it("round-trips PNG with 1 to 4 channels, clamping to [0, 1]", function()
    local tmp = os.tmpname() .. ".png"
    for c = 1, 4 do
      local t = farol.tensor({{{0, 0.5, 1}, {0.25, 2, -1}}}):expand(c, 2, 3)
      image.save(tmp, t)
      local back = image.load(tmp)
      assert.are.same({c, 2, 3}, back:size())
      local want = farol.tensor({{{0, 128 / 255, 1}, {64 / 255, 1, 0}}}):expand(c, 2, 3)
      H.close(back, want, 0, 1e-7, c .. " channels")
    end
    image.save(tmp, fx.rgb_png)
    H.close(image.load(tmp), fx.rgb_png, 0, 1e-7, "rgb round trip")
    image.save(tmp, farol.zeros(2, 3))
    assert.are.same({1, 2, 3}, image.load(tmp):size())
    os.remove(tmp)
  end)

  it("rejects what is not an image", function()
    H.fails(image.save, "farol: image.save: ", "need 1 to 4 channels")("/tmp/x.png", farol.zeros(5, 2, 2))
    H.fails(image.save, "farol: image.save: ", "got 1 dims")("/tmp/x.png", farol.zeros(4))
    H.fails(image.save, "farol: image.save: image must be a farol.Tensor")("/tmp/x.png", {})
    H.fails(image.save, "farol: image.save: ", "cannot open for writing")("/nonexistent/dir/x.png", farol.zeros(1, 2, 2))
  end)
end)

describe("image transforms match torchvision", function()
  it("resize, bilinear (antialias off) and nearest, every fixture case", function()
    local n = 0
    for name in pairs(meta) do
      if name:match("^resize%.") then
        local src, size = spec(name)
        H.close(image.resize(src, size), fx[name], 1e-5, 1e-6, name)
        H.close(image.resize(src, size, {interpolation = "nearest"}), fx[name .. "_nearest"], 0, 0, name .. " nearest")
        -- a batch resizes each image alike
        local b = image.resize(farol.stack({src, src * 2}, 1), size)
        H.close(b[2], fx[name] * 2, 1e-5, 1e-6, name .. " batch")
        n = n + 1
      end
    end
    assert.are.equal(6, n)
  end)

  it("center_crop, with torchvision's rounding and zero padding", function()
    local n = 0
    for name in pairs(meta) do
      if name:match("^crop%.") then
        local src, size = spec(name)
        H.close(image.center_crop(src, size), fx[name], 0, 0, name)
        n = n + 1
      end
    end
    assert.are.equal(4, n)
  end)

  it("to_grayscale and normalize", function()
    local src = fx["resize.src"]
    H.close(image.to_grayscale(src), fx["gray.out1"], 1e-6, 1e-7, "grey")
    assert.are.same({3, 7, 9}, image.to_grayscale(src, 3):size())
    local n = image.normalize(src, {0.5, 0.25, 0}, {2, 4, 0.5})
    H.close(n[2], (src[2] - 0.25) / 4, 1e-6, 1e-7, "normalize")
    H.close(n[3], src[3] / 0.5, 1e-6, 1e-7, "normalize")
  end)

  it("batch stacks paths and tensors through a transform", function()
    local b = image.batch({dir .. "rgb.png", fx.rgb_png:to("float32")}, function(t) return image.resize(t, {3, 3}) end)
    assert.are.same({2, 3, 3, 3}, b:size())
    H.close(b[1], b[2], 0, 1e-6, "same picture twice")
    H.fails(image.batch, "farol: image.batch: items[2] has shape 1x4x7, items[1] has 3x6x5")(
      {dir .. "rgb.png", dir .. "gray.png"})
    H.fails(image.batch, "farol: image.batch: items[1] must be a path or a tensor")({42})
  end)

  it("validates arguments", function()
    local src = fx["resize.src"]
    H.fails(image.resize, "farol: image.resize: unknown option 'mode'")(src, 4, {mode = "nearest"})
    H.fails(image.resize, "farol: image.resize: antialias = true is not supported")(src, 4, {antialias = true})
    H.fails(image.resize, "farol: image.resize: image must be C x H x W or N x C x H x W, got shape 7x9")(src[1], 4)
    H.fails(image.resize, "farol: image.resize: size must be an integer")(src, 0)
    H.fails(image.resize, "farol: image.resize: interpolation must be")(src, 4, {interpolation = "bicubic"})
    H.fails(image.center_crop, "farol: image.center_crop: size must be a number or {h, w}")(src, {1, 2, 3})
    H.fails(image.normalize, "farol: image.normalize: mean has 2 values, the image has 3 channels")(src, {1, 2}, {1, 1, 1})
    H.fails(image.normalize, "farol: image.normalize: std[2] is 0")(src, {0, 0, 0}, {1, 0, 1})
    H.fails(image.to_grayscale, "farol: image.to_grayscale: image must have 1 or 3 channels")(farol.zeros(2, 3, 3))
    H.fails(image.to_grayscale, "num_output_channels must be 1 or 3")(src, 2)
  end)
end)
