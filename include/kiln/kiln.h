#pragma once

// The whole public C++ API of Kiln.
#include "kiln/attrs.h"
#include "kiln/builder.h"
#include "kiln/dtype.h"
#include "kiln/network.h"
#include "kiln/runtime.h"
#include "kiln/status.h"
#include "kiln/sym_expr.h"
