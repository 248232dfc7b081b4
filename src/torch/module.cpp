// kiln._C: importing it also registers the torch ops and classes (TORCH_LIBRARY in
// engine_class.cpp and execute_engine.cpp run as this library loads).
#include <c10/util/Exception.h>
#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include "bindings.h"

namespace {

// KILN_CRASH_TRACE=1: a native backtrace on SIGSEGV/SIGABRT (debugging aid for machines without
// a debugger); the default handler then runs as usual.
void crash_trace(int sig) {
  void* frames[64];
  int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  if (const char* trace = std::getenv("KILN_CRASH_TRACE"); trace && trace[0] == '1') {
    std::signal(SIGSEGV, crash_trace);
    std::signal(SIGABRT, crash_trace);
  }
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
  kiln::torch_ext::bind_fast_execute(m);
  kiln::torch_ext::bind_testing(m);
}
