// The kernels' revision (cmake/kernels_id.cmake): timing cache keys carry it.

#include "builder/tactics.h"
#include "kiln_kernels_id.h"

namespace kiln::builder {

const char* kernels_id() { return KILN_KERNELS_ID; }

}  // namespace kiln::builder
