/* farol: tensors, a gradient tape and attribution routines in C.
 * The library knows nothing of Lua; see the headers in include/farol/. */
#ifndef FAROL_H
#define FAROL_H

#include "farol/tensor.h"
#include "farol/autograd.h"
#include "farol/ops.h"
#include "farol/attr.h"
#include "farol/io.h"
#include "farol/config.h"

#define FAROL_VERSION "0.1.0"

#endif
