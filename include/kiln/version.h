#pragma once

#include "kiln/export.h"

namespace kiln {
KILN_API const char* version();  // "0.1.0"
}  // namespace kiln
