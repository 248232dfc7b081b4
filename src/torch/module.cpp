// kiln._C: importing it also registers the torch ops and classes (TORCH_LIBRARY in
// engine_class.cpp and execute_engine.cpp run as this library loads).
#include <c10/util/Exception.h>

#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "Kiln native bindings: network, builder and the torch engine class";
  // c10 errors raised by shared engine code (make_engine) map as torch maps them.
  pybind11::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const c10::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    } catch (const c10::NotImplementedError& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what_without_backtrace());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
  kiln::torch_ext::bind_symexpr(m);
  kiln::torch_ext::bind_network(m);
  kiln::torch_ext::bind_builder(m);
  kiln::torch_ext::bind_engine(m);
  kiln::torch_ext::bind_testing(m);
}
