-- luarocks --lua-version 5.4 make     (from a checkout; see README.md)
-- Builds with CMake and installs farol.so (the Lua half is compiled in) and
-- the farol runner into the rocks tree.
rockspec_format = "3.0"
package = "farol"
version = "scm-1"
source = {
  -- luarocks make builds the checkout it runs in; the format requires a url
  url = "git+file://.",
}
description = {
  summary = "Tensors, a gradient tape and Captum-exact attribution methods, in C for Lua 5.4",
}
dependencies = {
  "lua == 5.4",
}
external_dependencies = {
  -- Debian: libopenblas-openmp-dev (or libopenblas-dev) libcjson-dev, cmake, pkg-config
  CJSON = { header = "cjson/cJSON.h" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    FAROL_INSTALL_CMOD_DIR = "$(LIBDIR)",
    CMAKE_INSTALL_BINDIR = "$(BINDIR)",
    FAROL_INSTALL_DEV = "OFF",
    FAROL_TESTS = "OFF",
  },
}
